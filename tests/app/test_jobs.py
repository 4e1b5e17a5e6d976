"""The jobs panel and the children's lives (issue 6 item 6, issue 8 item 3): `k` stops the
highlighted job, quitting while children run offers to leave or stop them, nothing is left a
zombie either way, and a new start finds children of an earlier one through their job records
in the state folder (never through a run.json in the tree).

Children here are small Python scripts (no torch): what is tested is the app's handling of
processes, not training. Waits are deadlines on state, never sleeps."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from app_support import defunct_children, screen_text, wait_exited, wait_until

from tui.app import make_app
from tui.remedy.supervise import Job, Supervisor, pid_alive, state_dir
from tui.widgets.jobs import JobsPanel, JobView
from tui.widgets.screens import ConfirmScreen, QuitScreen

SIZE = (160, 48)

# prints a line, then waits to be stopped; SIGTERM ends it politely (exit by the signal)
SLEEPER = "import time; print('epoch 1 | loss 0.5', flush=True); time.sleep(600)"


def sleeper(sup: Supervisor, out: Path, kind: str = "clip") -> Job:
    return sup.spawn([sys.executable, "-c", SLEEPER], kind, out)


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    """A deadline for code outside the app (no Pilot to pause on)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def sup(tmp_path: Path) -> Iterator[Supervisor]:
    """The app's Supervisor; whatever a failed test left running is stopped and reaped."""
    s = Supervisor()
    yield s
    for job in s.running():
        s.stop(job, grace=1.0)


@pytest.fixture
def root(tmp_path: Path) -> Path:
    (tmp_path / "runs").mkdir()
    return tmp_path / "runs"


async def test_k_stops_the_highlighted_job(root: Path, sup: Supervisor) -> None:
    app = make_app([root], supervisor=sup)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.rounds >= 0 and app.engine is not None)
        job = sleeper(sup, root)
        other = sleeper(sup, root, kind="probe")
        app.watch_jobs()
        panel = app.query_one(JobsPanel)
        await wait_until(pilot, lambda: len(panel.views) == 2)
        await wait_until(
            pilot, lambda: "epoch 1 | loss 0.5" in screen_text(app), timeout=20
        )  # the child's last line, read from its log
        assert app._jobs_timer is not None  # polling while children run
        panel.select_job(job.id)
        await pilot.press("k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert f"pid {job.pid}" in screen_text(app)
        await pilot.press("n")  # no: nothing happens
        await pilot.pause()
        assert job.state == "running"
        await pilot.press("k")
        await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await wait_until(pilot, lambda: job.state == "stopped", timeout=30)
        assert job.signal == "SIGTERM" and not pid_alive(job.pid)
        assert other.state == "running"  # only the highlighted one
        await wait_until(pilot, lambda: "stopped (SIGTERM)" in screen_text(app))
        assert defunct_children() == []
        # the other one exits by itself: reaped by the poll, and the timer goes (idle = idle)
        os.killpg(other.pid, signal.SIGKILL)
        await wait_until(pilot, lambda: other.state == "failed")
        await wait_until(pilot, lambda: app._jobs_timer is None)
        assert other.signal == "SIGKILL"
        assert defunct_children() == []
        await pilot.press("k")  # nothing runs any more
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)


async def test_quit_leaves_children_running(root: Path, sup: Supervisor) -> None:
    app = make_app([root], supervisor=sup)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.engine is not None)
        job = sleeper(sup, root)
        quick = sup.spawn([sys.executable, "-c", "pass"], "probe", root)
        app.watch_jobs()
        # the quick child has exited but nobody reaped it yet: a zombie until we do
        wait_for(lambda: quick.proc is not None and not pid_alive(quick.pid))
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen))
        text = screen_text(app)
        assert "1 launched job(s) still running" in text and f"pid {job.pid}" in text
        await pilot.press("escape")  # cancel: still here
        await pilot.pause()
        assert app.is_running and not isinstance(app.screen, QuitScreen)
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("l")
        await wait_exited(pilot, app)
    assert job.state == "running" and pid_alive(job.pid)  # left running, own session
    assert os.getsid(job.pid) == job.pid != os.getsid(0)
    assert quick.state == "exited"
    assert defunct_children() == []
    sup.stop(job, grace=2.0)
    assert defunct_children() == []


async def test_quit_stops_children(root: Path, sup: Supervisor) -> None:
    app = make_app([root], supervisor=sup)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.engine is not None)
        jobs = [sleeper(sup, root), sleeper(sup, root, kind="probe")]
        app.watch_jobs()
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen))
        await pilot.press("s")
        await wait_exited(pilot, app)
    assert [j.state for j in jobs] == ["stopped", "stopped"]
    assert not any(pid_alive(j.pid) for j in jobs)
    assert defunct_children() == []


async def test_readonly_quit_cannot_stop(root: Path, sup: Supervisor) -> None:
    app = make_app([root], supervisor=sup, readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: app.engine is not None)
        job = sleeper(sup, root)
        app.watch_jobs()
        await wait_until(pilot, lambda: bool(app.query_one(JobsPanel).views))
        await pilot.press("k")  # off under --readonly
        app.stop_job()  # the action itself refuses too
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen)
        await pilot.press("q")
        await wait_until(pilot, lambda: isinstance(app.screen, QuitScreen))
        assert "cannot stop them" in screen_text(app)
        assert not app.screen.query("#quit-stop")
        await pilot.press("s")  # no such choice
        await pilot.pause()
        assert isinstance(app.screen, QuitScreen)
        await pilot.press("l")
        await wait_exited(pilot, app)
    assert job.state == "running"


# A stand-in for a remedy study of the runner that has not started a trial yet: prints its
# study folder first (as the runner does), writes study.json, and on SIGTERM records "stopped"
# and exits. No trial has logged anything: the study is found again from its job record.
FAKE_STUDY = textwrap.dedent(
    """
    import json, os, signal, sys, time
    from pathlib import Path

    study = Path(sys.argv[1]) / "warmup-20260101-000000"
    study.mkdir(parents=True)

    def record(status):
        tmp = study / "study.json.tmp"
        tmp.write_text(json.dumps({"status": status, "pid": os.getpid(), "trials": []}))
        os.replace(tmp, study / "study.json")

    def stop(signum, frame):
        record("stopped")
        print("stopped by signal", signum, flush=True)
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, stop)
    record("running")
    print(study, flush=True)
    print("waiting for a device", flush=True)
    while True:
        time.sleep(600)
    """
)


async def test_a_new_start_adopts_running_children(tmp_path: Path, root: Path) -> None:
    """An app (here a plain process with a Supervisor) starts a study and dies before any
    trial logged; the next app finds the study from its job record in the state folder, shows
    it, follows its folder, and `k` stops it."""
    script = tmp_path / "fake_study.py"
    script.write_text(FAKE_STUDY)
    pid_file = tmp_path / "child.pid"
    starter = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from tui.remedy.supervise import Supervisor
        job = Supervisor().spawn([sys.executable, {str(script)!r}, {str(root)!r}],
                                 "warmup", Path({str(root)!r}))
        Path({str(pid_file)!r}).write_text(str(job.pid))
        """
    )
    subprocess.run([sys.executable, "-c", starter], check=True, timeout=60)
    child = int(pid_file.read_text())
    study_json = root / "warmup-20260101-000000" / "study.json"
    try:
        wait_for(study_json.exists)
        assert pid_alive(child) and os.getppid() != child
        sup = Supervisor()
        app = make_app([root], supervisor=sup)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: bool(sup.jobs), timeout=20)
            (job,) = sup.jobs.values()
            assert job.pid == child and job.kind == "warmup" and job.proc is None
            assert job.study_dir == root / "warmup-20260101-000000"  # from its log
            panel = app.query_one(JobsPanel)
            await wait_until(pilot, lambda: bool(panel.views) and panel.views[0].adopted)
            await wait_until(pilot, lambda: "found again" in screen_text(app))
            await wait_until(pilot, lambda: "waiting for a device" in screen_text(app))
            await pilot.press("k")
            await wait_until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
            await pilot.press("y")
            await wait_until(pilot, lambda: job.state == "stopped", timeout=30)
            assert not pid_alive(child)
            await wait_until(
                pilot, lambda: json.loads(study_json.read_text())["status"] == "stopped"
            )
            await wait_until(pilot, lambda: app._jobs_timer is None)
            assert list(state_dir().glob("*.json")) == []  # the ended job's record is gone
            await pilot.press("q")  # nothing runs: no question
            await wait_exited(pilot, app)
    finally:
        if pid_alive(child):
            os.killpg(child, signal.SIGKILL)
    assert defunct_children() == []


async def test_a_planted_run_json_names_no_process(tmp_path: Path, root: Path) -> None:
    """A run.json (and study.json) planted in the tree with status running, a remedy, and the
    pid of an unrelated process in its own process group (here a `sleep`, which even has its
    own session, as our children do): never adopted, and neither `k` nor "quit, stop them
    all" signals it. Only the state folder's job records name processes."""
    stranger = subprocess.Popen(["sleep", "600"], start_new_session=True)
    try:
        study = root / "clip-20260101-000000"
        trial = study / "t000"
        trial.mkdir(parents=True)
        (trial / "metrics.jsonl").write_text(json.dumps({"step": 0, "loss": 1.0}) + "\n")
        planted = {"status": "running", "pid": stranger.pid, "remedy": {"kind": "clip"}}
        (trial / "run.json").write_text(json.dumps(planted))
        (study / "study.json").write_text(json.dumps(planted))
        sup = Supervisor()
        app = make_app([root], supervisor=sup)
        async with app.run_test(size=SIZE) as pilot:
            await wait_until(pilot, lambda: any(r.endswith("t000") for r in app.runs), timeout=20)
            await pilot.pause()
            assert sup.jobs == {}
            await pilot.press("k")
            await pilot.pause()
            assert not isinstance(app.screen, ConfirmScreen)
            await pilot.press("q")  # nothing of ours runs: no question, nothing stopped
            await wait_exited(pilot, app)
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_snapshot_jobs_panel(root: Path, snap_compare: Any) -> None:
    """The panel with fixed views: running, exited, killed by a signal, found again; the
    child's output drawn inertly (an escape sequence shows as text). On an empty root: the
    findings table's column layout is not what is tested here."""
    app = make_app([root], poll=60.0)
    views = [
        JobView(
            "clip-1",
            "clip",
            "running",
            4242,
            study_dir="/data/runs/clip-20260101-120000",
            lines=("started t001 {'clip_norm': 1.318} (pid 4250)", "step 12/30 | loss 1.9"),
        ),
        JobView(
            "warmup-1",
            "warmup",
            "exited",
            4100,
            exit_code=0,
            study_dir="/data/runs/warmup-20260101-110000",
            lines=("t002 finished (exit 0)",),
        ),
        JobView(
            "probe-1",
            "probe",
            "stopped",
            4000,
            exit_code=-9,
            signal="SIGKILL",
            study_dir="/data/runs/probe-20260101-100000",
            lines=("\x1b]0;pwned\x07title change attempt",),
        ),
        JobView(
            "adopted-3900",
            "warmup",
            "running",
            3900,
            study_dir="/data/runs/warmup-20251231-090000",
            adopted=True,
        ),
    ]

    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: app.rounds >= 0 and app.watcher is not None)
        app.query_one(JobsPanel).show(views)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
