"""Snapshots of the main screens on fixed sample data (values and times written by the tests;
polling asked for, so the status line does not depend on the machine's inotify).

Update after an intended change: pytest tests/app/test_snapshots.py --snapshot-update
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from app_support import wait_until

from tui.app import TunetopApp, make_app
from tui.widgets.run_tree import NodeRef

SIZE = (160, 48)


def _app(root: Path) -> TunetopApp:
    return make_app([root], poll=60.0)


def _loaded(app: TunetopApp, then: Callable[[Any], Awaitable[None]] | None = None) -> Any:
    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: len(app.runs) == 4 and bool(app.studies) and app.rounds)
        await wait_until(pilot, lambda: "lr_sweep" in app.study_views)
        # the app opens on the tree's first node, the study; these screens show the lone run
        app.select(NodeRef("run", "baseline"))
        await pilot.pause()
        if then is not None:
            await then(pilot)
        await pilot.pause()

    return run_before


def test_snapshot_run(sample_root: Path, snap_compare: Any) -> None:
    app = _app(sample_root)
    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded(app))


def test_snapshot_study(sample_root: Path, snap_compare: Any) -> None:
    app = _app(sample_root)

    async def to_study(pilot: Any) -> None:
        app.select(NodeRef("study", "lr_sweep"))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded(app, to_study))


def test_snapshot_overlay_log_outlier(sample_root: Path, snap_compare: Any) -> None:
    app = _app(sample_root)

    async def overlay(pilot: Any) -> None:
        app.select(NodeRef("run", "lr_sweep/lr=0.001"))
        await pilot.press("space")
        app.select(NodeRef("run", "baseline"))
        await pilot.press("space", "y", "o")

    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded(app, overlay))


def test_snapshot_help(sample_root: Path, snap_compare: Any) -> None:
    app = _app(sample_root)

    async def help_(pilot: Any) -> None:
        await pilot.press("question_mark")

    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded(app, help_))


def test_snapshot_remedy(sample_root: Path, snap_compare: Any) -> None:
    """The plan modal for logs tunetop cannot relaunch: what is missing, launch disabled.
    (A fixed plan: the real one names the test's temporary folders.)"""
    from tui.remedy.plan import NO_SOURCE, Plan

    app = _app(sample_root)
    plan = Plan(
        "clip",
        "/data/runs/baseline",
        computed={"run": ".", "p90": 1.637, "p75": 1.318, "points": 300},
        missing=[NO_SOURCE],
        out="/data/runs",
        partial={"name": "baseline", "study": {"name": "clip", "search": "list", "list": []}},
        notes=["R23: clip_norm 1.637 = p90 of 300 unclipped norms; tighter trial 1.318 (p75)"],
    )

    async def remedy(pilot: Any) -> None:
        app.launch_remedy(plan)
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=_loaded(app, remedy))
