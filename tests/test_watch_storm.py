"""The watcher on big trees (issue 14, attack 9): the inotify mask leaves out tunetop's own
reads, a real queue overflow hands over to polling and says so, a tree above the folder budget
is polled from the start, polling finds new runs through folder stamps, and a poll of an idle
tree walks nothing."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import tui.watch as watch
from tui.engine import Engine, RunDiscovered
from tui.logs.scan_cache import FolderStamps, count_folders
from tui.watch import Watcher


def write_run(folder: Path, steps: int = 5) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [json.dumps({"step": s, "loss": 1.0 / (s + 1)}) for s in range(steps)]
    (folder / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def until(pred: Callable[[], bool], timeout: float = 10.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not met within {timeout} s")
        time.sleep(0.01)  # a poll with a deadline, not a synchronisation


@pytest.fixture
def watcher_factory() -> Iterator[Callable[..., Watcher]]:
    made: list[Watcher] = []

    def make(*args: object, **kwargs: object) -> Watcher:
        w = Watcher(*args, **kwargs)  # type: ignore[arg-type]
        made.append(w)
        return w

    yield make
    for w in made:
        w.stop()


# -- the mask ------------------------------------------------------------------------------


def test_own_reads_raise_no_event(tmp_path: Path, watcher_factory: Callable[..., Watcher]) -> None:
    """Open, read, close a log and list its folder, as tunetop does each round: no event.
    A write to another file afterwards is seen, so the reads' events (inotify keeps their
    order) would have come before it."""
    run = tmp_path / "run"
    write_run(run)
    log = run / "metrics.jsonl"
    marker = tmp_path / "marker.jsonl"
    w = watcher_factory([tmp_path])
    w.start()
    assert w.reason == "inotify"
    with open(log, "rb") as fh:
        fh.read()
    with os.scandir(run) as it:
        list(it)
    with os.scandir(tmp_path) as it:
        list(it)
    marker.write_text("{}\n")
    until(lambda: any(p == str(marker) for _, p in list(w.recent_events)), what="marker event")
    events = list(w.recent_events)
    assert not [e for e in events if e[1] == str(log)], events
    assert not [e for e in events if e[0] in ("opened", "closed_no_write")], events


# -- overflow ------------------------------------------------------------------------------


def test_queue_overflow_switches_to_polling(
    tmp_path: Path, watcher_factory: Callable[..., Watcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A real IN_Q_OVERFLOW: watchdog's reading thread is held while more events than the
    kernel queues are made; on release the watcher polls, says why, and walks once."""
    monkeypatch.setattr(watch, "BUSY_EVENTS", 10**9)  # this test is about the overflow
    monkeypatch.setattr(watch, "DEFAULT_POLL", 0.05)
    with open("/proc/sys/fs/inotify/max_queued_events") as fh:
        queued = int(fh.read())
    said: list[str] = []
    w = watcher_factory([tmp_path], on_change=said.append)
    w.start()
    assert w.reason == "inotify" and said == ["inotify"]
    stop = threading.Event()
    assert w.wait(stop) == (True, True)  # the first round
    fd = getattr(w._observer, "_inotify_fd", None)  # watchdog's reader: reads under its lock
    if fd is None:
        pytest.skip("watchdog < 7 has no InotifyFD: a queue overflow is not reported there")
    a, b = (os.open(tmp_path / n, os.O_WRONLY | os.O_CREAT, 0o644) for n in ("a", "b"))
    assert fd._lock.acquire(timeout=5)
    try:
        # alternating files: identical consecutive events would be merged by the kernel;
        # 4096 over the queue: the reader may hold one buffer of events (2048) already
        for _ in range((queued + 4096) // 2 + 1):
            os.write(a, b"x")
            os.write(b, b"x")
    finally:
        fd._lock.release()
        os.close(a)
        os.close(b)
    deadline = time.monotonic() + 30
    created = False
    while w.interval is None and time.monotonic() < deadline:
        created, _ = w.wait(stop)
    assert w.interval == 0.05, w.reason
    assert "inotify queue overflowed" in w.reason
    assert said[-1] == w.reason  # posted: the app's header shows it
    assert w._observer is None
    if not created:  # the round right after the switch walks (events were lost)
        created, _ = w.wait(stop)
    assert created
    assert w.take_paths() is None  # and reads every known file


# -- the folder budget ---------------------------------------------------------------------


def test_inotify_budget_is_a_share_of_the_watch_limit(tmp_path: Path) -> None:
    limit = tmp_path / "max_user_watches"
    limit.write_text("8192\n")
    assert watch.inotify_budget(str(limit)) == 2048
    limit.write_text("1000000\n")
    assert watch.inotify_budget(str(limit)) == watch.FOLDER_BUDGET
    assert watch.inotify_budget(str(tmp_path / "absent")) == watch.FOLDER_BUDGET


def test_above_the_budget_starts_polling(
    tmp_path: Path, watcher_factory: Callable[..., Watcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "FOLDER_BUDGET", 10)
    for i in range(30):
        (tmp_path / f"f{i:02d}").mkdir()
    said: list[str] = []
    w = watcher_factory([tmp_path], on_change=said.append)
    w.start()
    assert w._observer is None and w.interval == watch.DEFAULT_POLL
    assert w.reason == "polling every 2 s: 31 folders is above the inotify budget (10)"
    assert said == [w.reason]


def test_within_the_budget_uses_inotify(
    tmp_path: Path, watcher_factory: Callable[..., Watcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "FOLDER_BUDGET", 10)
    for i in range(9):
        (tmp_path / f"f{i:02d}").mkdir()
    w = watcher_factory([tmp_path])
    w.start()
    assert w.reason == "inotify" and w._observer is not None


def test_a_late_root_above_the_budget_switches_to_polling(
    tmp_path: Path, watcher_factory: Callable[..., Watcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "FOLDER_BUDGET", 5)
    monkeypatch.setattr(watch, "DEFAULT_POLL", 0.05)
    late = tmp_path / "late"
    said: list[str] = []
    w = watcher_factory([late], on_change=said.append)
    stop = threading.Event()
    assert w.wait(stop) == (True, True)  # the first round: inotify, the root pending
    assert w.reason == "inotify"
    for i in range(8):
        (late / f"f{i}").mkdir(parents=True)
    deadline = time.monotonic() + 10
    while w.interval is None and time.monotonic() < deadline:
        w.wait(stop)
    assert w.reason == "polling every 0.05 s: 9 folders is above the inotify budget (5)"
    assert said[-1] == w.reason and w._observer is None


def follow(w: Watcher, engine: Engine, stop: threading.Event, found: set[str]) -> None:
    """The app's follow loop, without the app."""
    while not stop.is_set():
        created, modified = w.wait(stop)
        if created or modified:
            for message in engine.step(full=created, paths=w.take_paths()):
                if isinstance(message, RunDiscovered):
                    found.update(r.id for r in message.runs)


def test_new_runs_are_found_while_polling_above_the_budget(
    tmp_path: Path, watcher_factory: Callable[..., Watcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(watch, "FOLDER_BUDGET", 10)
    monkeypatch.setattr(watch, "DEFAULT_POLL", 0.05)
    for i in range(40):
        (tmp_path / "empty" / f"f{i:02d}").mkdir(parents=True)
    write_run(tmp_path / "study" / "t0")
    write_run(tmp_path / "study" / "t1")
    w = watcher_factory([tmp_path])
    engine = Engine([tmp_path])
    stop, found = threading.Event(), set()
    thread = threading.Thread(target=follow, args=(w, engine, stop, found), daemon=True)
    thread.start()
    try:
        until(lambda: {"study/t0", "study/t1"} <= found, what="the first runs")
        assert "above the inotify budget" in w.reason
        write_run(tmp_path / "study" / "t2")  # beside known runs: a hot folder
        until(lambda: "study/t2" in found, what="a new trial")
        write_run(tmp_path / "empty" / "f17")  # in an old empty folder: the sweep
        until(lambda: "empty/f17" in found, what="a run in an old folder")
        write_run(tmp_path / "new" / "deep" / "run")  # a new subtree
        until(lambda: "new/deep/run" in found, what="a run in a new subtree")
    finally:
        stop.set()
        w.stop()
        thread.join(timeout=10)
    assert not thread.is_alive()


# -- folder stamps -------------------------------------------------------------------------


def settled(stamps: FolderStamps) -> FolderStamps:
    """Stamps with every folder out of the racy window (listed long after its mtime)."""
    for stamp in stamps._stamps.values():
        stamp.listed_ns = stamp.mtime_ns + 10 * 10**9
    return stamps


def test_stamps_see_subfolders_and_logs_not_other_files(tmp_path: Path) -> None:
    write_run(tmp_path / "run")
    (tmp_path / "empty").mkdir()
    stamps = FolderStamps([tmp_path])
    assert stamps.build() == 3
    settled(stamps)
    assert not stamps.check(1.0)  # nothing changed
    # run.json replaced through a temp file, a checkpoint file: not a new run
    tmp = tmp_path / "run" / ".run.json.abc.tmp"
    tmp.write_text("{}")
    os.replace(tmp, tmp_path / "run" / "run.json")
    assert stamps.check(1.0)  # run.json is new to this folder
    settled(stamps)
    tmp.write_text('{"status": "finished"}')
    os.replace(tmp, tmp_path / "run" / "run.json")
    (tmp_path / "run" / "model.bin").write_bytes(b"\0")
    assert not stamps.check(1.0)
    settled(stamps)
    (tmp_path / "empty" / "metrics.jsonl").write_text("")  # a log in an old folder
    assert stamps.check(1.0)
    settled(stamps)
    (tmp_path / "empty" / "sub").mkdir()  # a subfolder
    assert stamps.check(1.0)
    assert len(stamps) == 4
    settled(stamps)
    os.rmdir(tmp_path / "empty" / "sub")
    assert stamps.check(1.0)
    assert len(stamps) == 3


def test_stamps_list_again_a_folder_changed_just_before_its_listing(tmp_path: Path) -> None:
    """The mtime clock is coarse: an entry made in the same tick as the listing leaves the
    mtime as it was. A folder changed within RACY_NS of its listing is listed again."""
    stamps = FolderStamps([tmp_path])
    stamps.build()  # tmp_path was just made: racy
    before = stamps.listings
    assert not stamps.check(1.0)
    assert stamps.listings == before + 1  # listed again although its mtime did not change
    settled(stamps)
    assert not stamps.check(1.0)
    assert stamps.listings == before + 1  # settled: a stat only


def test_stamps_follow_discovery_rules(tmp_path: Path) -> None:
    (tmp_path / ".git" / "objects").mkdir(parents=True)
    (tmp_path / "checkpoints" / "a").mkdir(parents=True)
    (tmp_path / "run").mkdir()
    os.symlink(tmp_path / "run", tmp_path / "link")
    stamps = FolderStamps([tmp_path])
    # the root, run/ and checkpoints/ with a/ (a Trainer output_dir is often named so, so
    # discovery enters it): not .git (SKIP_DIRS), not the symlink
    assert stamps.build() == 4
    assert count_folders([tmp_path], 100) == 6  # inotify watches every real folder


def test_stamps_see_a_root_that_appears(tmp_path: Path) -> None:
    root = tmp_path / "later"
    stamps = FolderStamps([root])
    assert stamps.build() == 0
    assert not stamps.check(1.0)
    write_run(root / "run")
    assert stamps.check(1.0)
    assert len(stamps) == 2
    (root / "run" / "metrics.jsonl").unlink()
    (root / "run").rmdir()
    root.rmdir()
    assert stamps.check(1.0)  # the root went
    assert len(stamps) == 0
    write_run(root / "again")
    assert stamps.check(1.0)  # and came back
    assert len(stamps) == 2


def test_a_poll_of_an_unchanged_tree_lists_nothing(tmp_path: Path) -> None:
    for i in range(300):
        (tmp_path / f"g{i // 30}" / f"f{i}").mkdir(parents=True)
    write_run(tmp_path / "g3" / "f95")
    stamps = FolderStamps([tmp_path])
    stamps.build()
    settled(stamps)
    before = stamps.listings
    for _ in range(5):
        assert not stamps.check(0.0)  # MIN_SWEEP folders a check at least: all of these
    assert stamps.listings == before
    hot = set(stamps._hot)
    assert hot == {str(tmp_path), str(tmp_path / "g3"), str(tmp_path / "g3" / "f95")}


@pytest.mark.slow
def test_20000_folders_new_run_within_two_polls(
    tmp_path: Path, watcher_factory: Callable[..., Watcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real budget and 20,000 folders: polling, and a new trial beside the known runs is
    walked for in the first or second poll after it appears (counted in polls, not seconds)."""
    monkeypatch.setattr(watch, "DEFAULT_POLL", 0.2)
    for i in range(20_000):
        (tmp_path / f"g{i // 100:03d}" / f"f{i % 100:02d}").mkdir(parents=True)
    write_run(tmp_path / "study" / "t0")
    write_run(tmp_path / "study" / "t1")
    w = watcher_factory([tmp_path])
    w.start()
    assert "above the inotify budget" in w.reason
    engine = Engine([tmp_path])
    stop = threading.Event()
    created, _ = w.wait(stop)
    engine.step(full=created, paths=w.take_paths())
    assert {"study/t0", "study/t1"} <= set(engine.workspace.runs)
    write_run(tmp_path / "study" / "t2")
    for _ in range(2):
        created, _ = w.wait(stop)
        engine.step(full=created, paths=w.take_paths())
        if "study/t2" in engine.workspace.runs:
            break
    assert "study/t2" in engine.workspace.runs, "not found in two polls"


def test_stamps_on_a_network_fs_list_hot_folders_each_check(tmp_path: Path) -> None:
    """On NFS a stat can answer from a minute-old cache; listing revalidates: hot folders are
    listed every check there (and only there)."""
    write_run(tmp_path / "run")
    for relist, extra in ((False, 0), (True, 2)):
        stamps = FolderStamps([tmp_path], relist_hot=relist)
        stamps.build()
        settled(stamps)
        before = stamps.listings
        assert not stamps.check(1.0)
        assert stamps.listings == before + extra  # the root and run/ are hot
