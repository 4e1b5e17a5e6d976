"""Pilot tests: every key of the dashboard does what the footer and the help screen say."""

from __future__ import annotations

from pathlib import Path

import pytest
from app_support import screen_text, wait_exited, wait_until

from tui.app import TunetopApp, make_app
from tui.widgets.findings_panel import FindingsPanel
from tui.widgets.plots import HParamPlot, MetricPlot
from tui.widgets.remedy_modal import RemedyModal
from tui.widgets.run_tree import NodeRef, RunTree
from tui.widgets.screens import HelpScreen

SIZE = (160, 48)


async def loaded(pilot: object, app: TunetopApp, runs: int) -> None:
    await wait_until(pilot, lambda: len(app.runs) >= runs and app.rounds >= 1)
    await pilot.pause()  # type: ignore[attr-defined]


async def test_plot_keys(sample_root: Path) -> None:
    app = make_app([sample_root])
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 4)
        # the first node of the tree: the study (its trials are grouped as they are discovered)
        assert app.cursor == NodeRef("study", "lr_sweep")
        app.select(NodeRef("run", "baseline"))
        await pilot.pause()
        assert app.cursor == NodeRef("run", "baseline")
        loss = app.query_one("#plot-loss", MetricPlot)
        assert loss.settings.smoothing == 0.6
        await pilot.press("s")
        assert app.settings.smoothing == 0.9 and loss.settings.smoothing == 0.9
        await pilot.press("s", "s")
        assert app.settings.smoothing == 0.0
        await pilot.press("y")
        assert app.settings.log_y
        await pilot.pause()
        assert "[log]" in screen_text(app)
        await pilot.press("y", "o")
        assert not app.settings.log_y and app.settings.outlier
        await pilot.pause()
        assert "p5-p95" in screen_text(app)
        await pilot.press("x")
        assert app.settings.x_axis == "time"
        await pilot.pause()
        assert "s " in screen_text(app) or "min" in screen_text(app)
        await pilot.press("x")
        assert app.settings.x_axis == "step"
        await pilot.press("plus")
        assert app.settings.view == (0.5, 1.0)  # a window at the end keeps following
        await pilot.press("left_square_bracket")
        assert app.settings.view == (0.375, 0.875)
        await pilot.press("right_square_bracket", "minus")
        assert app.settings.view[1] == 1.0
        await pilot.press("plus", "0")
        assert app.settings.view == (0.0, 1.0)


async def test_navigation_overlay_and_study(sample_root: Path) -> None:
    app = make_app([sample_root])
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 4)
        await wait_until(pilot, lambda: bool(app.studies))
        tree = app.query_one(RunTree)
        assert tree.has_focus
        # to the study node: the hyperparameter-axis plot replaces the histogram
        app.select(NodeRef("study", "lr_sweep"))
        await wait_until(pilot, lambda: "lr_sweep" in app.study_views)
        await pilot.pause()
        assert app.query_one(HParamPlot).display
        text = screen_text(app)
        assert "best value vs lr" in text
        assert [r.id for r in app.shown_runs()] == [
            "lr_sweep/lr=0.001",
            "lr_sweep/lr=0.01",
            "lr_sweep/lr=0.1",
        ]
        # down to the first trial, mark it, then another: overlay of the two
        await pilot.press("down")
        assert app.cursor == NodeRef("run", "lr_sweep/lr=0.001")
        await pilot.press("space", "down", "space")
        assert app.marked == ["lr_sweep/lr=0.001", "lr_sweep/lr=0.01"]
        assert [r.id for r in app.query_one("#plot-loss", MetricPlot).runs] == app.marked
        await pilot.pause()
        assert "◆" in screen_text(app)
        await pilot.press("space")
        assert app.marked == ["lr_sweep/lr=0.001"]
        await pilot.press("tab")
        assert app.query_one(FindingsPanel).has_focus


async def test_filter(sample_root: Path) -> None:
    app = make_app([sample_root])
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 4)
        await pilot.press("slash")
        assert app.focused is not None and app.focused.id == "filter"
        await pilot.press(*"lr=0\\.0[01]")
        await pilot.press("enter")
        tree = app.query_one(RunTree)
        assert sorted(tree.run_ids) == ["lr_sweep/lr=0.001", "lr_sweep/lr=0.01"]
        assert tree.has_focus
        await pilot.press("slash", "ctrl+a", "(")  # an unfinished pattern: plain text
        assert tree.run_ids == []
        await pilot.press("escape")
        assert app.filter is None and len(tree.run_ids) == 4


@pytest.mark.parametrize(("key", "kind"), [("w", "warmup"), ("c", "clip"), ("e", "probe")])
async def test_remedy_keys_show_the_plan(sample_root: Path, key: str, kind: str) -> None:
    app = make_app([sample_root])
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 4)
        await pilot.press(key)
        await wait_until(pilot, lambda: isinstance(app.screen, RemedyModal))
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, RemedyModal) and modal.plan.kind == kind
        text = screen_text(app)
        assert f"kind {kind}" in text and "findings that call for it" in text
        # hand-written logs: no run.json, no launch template, so nothing can be launched
        assert "missing:" in text and "cannot launch" in text
        await pilot.press("escape")
        assert not isinstance(app.screen, RemedyModal)


async def test_help_stop_and_quit(sample_root: Path) -> None:
    app = make_app([sample_root])
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 4)
        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        assert "early-instability probe" in screen_text(app)
        await pilot.press("escape")
        await pilot.press("k")
        await pilot.pause()
        assert any("no launched run" in str(n.message) for n in app._notifications)
        await pilot.press("q")
        await wait_exited(pilot, app)
    assert app.return_code in (0, None)


async def test_readonly_disables_launch_keys(sample_root: Path) -> None:
    app = make_app([sample_root], readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 4)
        for key in ("w", "c", "e", "k"):
            await pilot.press(key)
        await pilot.pause()
        assert not isinstance(app.screen, RemedyModal)
        assert not app._notifications
        assert app.check_action("remedy", ("warmup",)) is None
        assert app.check_action("stop_job", ()) is None
        assert "readonly" in screen_text(app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Warmup remedy" not in titles and "Smoothing" in titles


async def test_command_palette_lists_actions(sample_root: Path) -> None:
    app = make_app([sample_root])
    async with app.run_test(size=SIZE) as pilot:
        await loaded(pilot, app, 4)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for t in (
            "Smoothing",
            "Log y",
            "Outlier range",
            "X axis",
            "Filter runs",
            "Overlay",
            "Warmup remedy",
            "Clipping remedy",
            "Early-instability probe",
        ):
            assert t in titles
        await pilot.press("ctrl+p")
        await pilot.press(*"log y")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await wait_until(pilot, lambda: app.settings.log_y)
