"""The watcher tells the worker which files changed (so thousands of idle run folders cost
nothing), hands over to polling when events come too fast, and reads everything now and then
in case inotify dropped events."""

from __future__ import annotations

import threading
import time
from pathlib import Path

from app_support import wait_until, write_run

import tui.watch as watch
from tui.app import make_app
from tui.watch import Watcher
from tui.widgets.run_tree import RunTree


def wait_paths(w: Watcher, want: Path, timeout: float = 10.0) -> set[str]:
    deadline = time.monotonic() + timeout
    seen: set[str] = set()
    while time.monotonic() < deadline:
        w._wake.wait(0.05)
        paths = w.take_paths()
        if paths:
            seen |= paths
        if str(want) in seen:
            return seen
    raise AssertionError(f"{want} not reported; saw {seen}")


def test_changed_files_are_named(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    fa, fb = tmp_path / "a" / "metrics.jsonl", tmp_path / "b" / "metrics.jsonl"
    fa.write_text("")
    fb.write_text("")
    w = Watcher([tmp_path])
    w.start()
    try:
        assert w.reason == "inotify"
        assert w.take_paths() is None  # the first round reads everything
        with open(fa, "a") as fh:
            fh.write('{"step": 1}\n')
        seen = wait_paths(w, fa)
        assert str(fb) not in seen
    finally:
        w.stop()


def test_too_many_events_hand_over_to_polling(tmp_path: Path) -> None:
    w = Watcher([tmp_path])
    w.start()
    try:
        for _ in range(watch.BUSY_EVENTS + 1):
            w._count_event()
        w.wait(threading.Event())
        assert w.interval == watch.BUSY_POLL and "polling" in w.reason
        assert w.take_paths() is None  # polling: read every known file
    finally:
        w.stop()


def test_a_quiet_minute_reads_everything_once(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(watch, "SAFETY_READ", 0.05)
    w = Watcher([tmp_path])
    try:
        w.wait(threading.Event())  # the first round
        w.take_paths()
        assert w.take_paths() == set()
        created, modified = w.wait(threading.Event())  # nothing happened: the safety read
        assert modified and not created
        assert w.take_paths() is None
    finally:
        w.stop()


async def test_header_says_polling_above_the_budget_and_new_runs_still_show(
    tmp_path: Path, monkeypatch
) -> None:
    """The watcher's state reaches the header (WatchChanged), and a run that appears after
    the dashboard chose polling is shown."""
    monkeypatch.setattr(watch, "FOLDER_BUDGET", 5)
    monkeypatch.setattr(watch, "DEFAULT_POLL", 0.1)
    root = tmp_path / "watched"  # not tmp_path: the test's state folder is in there too
    for i in range(12):
        (root / "old" / f"f{i}").mkdir(parents=True)
    write_run(root / "study" / "a", 30)
    app = make_app([root])
    async with app.run_test(size=(160, 48)) as pilot:
        status = app.query_one("#status")

        def header() -> str:
            return str(getattr(status.content, "plain", status.content))

        await wait_until(pilot, lambda: "above the inotify budget" in header())
        assert "polling every 0.1 s: 16 folders is above the inotify budget (5)" in header()
        await wait_until(pilot, lambda: "study/a" in app.runs)
        write_run(root / "study" / "b", 30)
        tree = app.query_one(RunTree)
        await wait_until(pilot, lambda: "study/b" in tree.run_ids)
        # the tree's rebuild queues a highlight: let it be handled before the app closes (one
        # handled after the widgets are gone raises NoMatches in TunetopApp._highlighted)
        await pilot.pause()
