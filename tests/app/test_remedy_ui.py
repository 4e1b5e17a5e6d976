"""The remedy keys in the app (issue 6 item 6): the plan modal, its edits, what blocks the
launch, and a real two-trial CPU study launched from the modal whose runs appear in the tree.

Waits are deadlines on the app's state (wait_until), never sleeps."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from app_support import (
    defunct_children,
    runner_spec,
    screen_text,
    wait_exited,
    wait_until,
    write_run,
    write_runner_run,
)
from textual.widgets import Button, Input, RadioButton

from tui.app import TunetopApp, make_app
from tui.remedy.plan import Plan, device_for_trials
from tui.widgets.jobs import JobsPanel
from tui.widgets.remedy_modal import RemedyModal, TrialInput
from tui.widgets.run_tree import NodeRef, RunTree

SIZE = (160, 48)


@pytest.fixture
def runner_root(tmp_path: Path) -> Path:
    """One finished run made (as far as run.json says) by the runner: plans can launch."""
    root = tmp_path / "runs"
    write_runner_run(root / "base", steps=30)
    return root


async def open_plan(pilot: Any, app: TunetopApp, key: str, target: NodeRef) -> RemedyModal:
    tree = app.query_one(RunTree)

    def selected() -> bool:
        # the tree is rebuilt as runs and studies arrive: select again until it sticks
        if app.cursor != target or tree.cursor_node is None or tree.cursor_node.data != target:
            app.select(target)
            return False
        return True

    await wait_until(pilot, selected)
    await pilot.pause()
    assert app.cursor == target
    await pilot.press(key)
    await wait_until(pilot, lambda: isinstance(app.screen, RemedyModal), timeout=20)
    await pilot.pause()
    modal = app.screen
    assert isinstance(modal, RemedyModal)
    return modal


def confirm_button(modal: RemedyModal) -> Button:
    return modal.query_one("#plan-confirm", Button)


def record_launches(app: TunetopApp) -> list[Plan]:
    """The plans the modal confirms, recorded instead of launched."""
    launched: list[Plan] = []
    app.launch_plan = launched.append  # type: ignore[method-assign,assignment]
    return launched


async def test_clip_plan_is_shown_and_edited(runner_root: Path) -> None:
    app = make_app([runner_root])
    launched = record_launches(app)
    async with app.run_test(size=SIZE) as pilot:
        modal = await open_plan(pilot, app, "c", NodeRef("run", "base"))
        plan = modal.plan
        assert plan.kind == "clip" and plan.launchable
        assert [list(t) for t in plan.trials()] == [["clip_norm"], ["clip_norm"]]
        text = screen_text(app)
        device = device_for_trials(2)[0]
        for shown in ("kind clip", "p90", f"t000 [{device}]", f"t001 [{device}]", "R23", "R24"):
            assert shown in text, shown
        assert str(runner_root.resolve())[:40] in text  # the output folder, beside the target
        assert not confirm_button(modal).disabled

        # an invalid value: an error, and the launch is blocked
        boxes = list(modal.query(TrialInput))
        assert [b.key for b in boxes] == ["clip_norm", "clip_norm"]
        boxes[0].value = "not-a-number"
        await pilot.pause()
        assert confirm_button(modal).disabled
        assert "t000 clip_norm" in screen_text(app) and "fix the values" in screen_text(app)
        boxes[0].value = "-1"  # a number the spec refuses
        await pilot.pause()
        assert confirm_button(modal).disabled and "invalid trial values" in screen_text(app)
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, RemedyModal) and not launched
        # valid edits: a value, one trial removed, another output folder
        boxes[0].value = "0.25"
        await pilot.click("#remove-1")
        elsewhere = runner_root.parent / "elsewhere"
        modal.query_one("#plan-out", Input).value = str(elsewhere)
        await pilot.pause()
        assert not confirm_button(modal).disabled
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: bool(launched))
    (edited,) = launched
    assert edited.trials() == [{"clip_norm": 0.25}]
    assert edited.out == str(elsewhere)
    assert edited.spec is not None and edited.spec.study.list == [{"clip_norm": 0.25}]
    assert plan.trials()[0]["clip_norm"] != 0.25  # the computed plan itself is untouched


async def test_warmup_factor_recomputes_the_plan(tmp_path: Path) -> None:
    root = tmp_path / "runs"
    write_runner_run(root / "unstable", steps=300, lr=0.01, diverge_at=150)
    app = make_app([root])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "unstable" in app.runs)
        # the divergence finding must be in before planning (it makes the run "unstable")
        await wait_until(pilot, lambda: bool(app.findings.get("unstable")))
        modal = await open_plan(pilot, app, "w", NodeRef("run", "unstable"))
        assert modal.plan.kind == "warmup" and modal.plan.launchable, modal.plan.missing
        assert modal.plan.computed["base_lr"] == pytest.approx(0.1)
        assert [t["schedule.warmup_steps"] for t in modal.plan.trials()] == [10]
        assert "base_learning_rate" in screen_text(app)
        first = modal.plan
        modal.query(RadioButton)[1].value = True  # 100x
        await wait_until(pilot, lambda: modal.plan is not first and not modal.busy, timeout=20)
        await pilot.pause()
        assert modal.plan.computed["base_lr"] == pytest.approx(1.0)
        assert modal.factor == 100.0
        assert modal.query(RadioButton)[1].value  # still shown as chosen after the recompute
        assert "base_lr: 1" in screen_text(app)
        assert not confirm_button(modal).disabled
        second = modal.plan
        modal.query(RadioButton)[2].value = True  # 1x: rescue the run at its own rate
        await wait_until(pilot, lambda: modal.plan is not second and not modal.busy, timeout=20)
        assert modal.plan.computed["base_lr"] == pytest.approx(0.01)
        assert any("factor 1" in n for n in modal.plan.notes)


async def test_w_on_a_finished_warmup_study_applies_it(tmp_path: Path) -> None:
    """w on a warmup study tunetop made (run.json's remedy) plans warmup-apply (R20)."""

    root = tmp_path / "runs"
    base = write_runner_run(root / "base", steps=300, lr=0.01)
    for i, warm in enumerate((10, 100)):
        spec = runner_spec(0, 0.1)
        spec["schedule"] = {"kind": "constant", "warmup_steps": warm, "post_warmup_steps": 2 * warm}
        write_run(
            root / "warmup-20260101-000000" / f"t{i:03d}",
            3 * warm,
            lr=0.1,
            run_json={
                "spec": spec,
                "status": "finished",
                "remedy": {"kind": "warmup", "source": str(base)},
            },
        )
    app = make_app([root])
    async with app.run_test(size=SIZE) as pilot:
        study = NodeRef("study", "warmup-20260101-000000")
        modal = await open_plan(pilot, app, "w", study)
        assert modal.plan.kind == "warmup-apply", modal.plan
        assert "kind warmup-apply" in screen_text(app) and "warmup trial" in screen_text(app)
        assert not modal.query(RadioButton)  # no factor to choose: the study chose the rate
        await pilot.press("escape")
        # on one of its trials, w means the same: the trial's study is the target
        modal = await open_plan(pilot, app, "w", NodeRef("run", "warmup-20260101-000000/t000"))
        assert modal.plan.kind == "warmup-apply"
        assert Path(modal.plan.target) == root / "warmup-20260101-000000"


async def test_missing_source_blocks_the_launch(sample_root: Path) -> None:
    """Hand-written logs: no run.json, no launch template: the plan says what is missing."""
    app = make_app([sample_root])
    launched = record_launches(app)
    async with app.run_test(size=SIZE) as pilot:
        modal = await open_plan(pilot, app, "c", NodeRef("run", "baseline"))
        assert not modal.plan.launchable and modal.plan.missing
        assert confirm_button(modal).disabled
        text = screen_text(app)
        assert "missing:" in text and "cannot launch: missing" in text
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, RemedyModal) and not launched


async def test_readonly_refuses_to_launch(runner_root: Path) -> None:
    app = make_app([runner_root], readonly=True)
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "base" in app.runs)
        await pilot.press("c")  # the key is off
        await pilot.pause()
        assert not isinstance(app.screen, RemedyModal)
        app.action_remedy("clip")  # and so is the action itself (palette, scripts)
        await pilot.pause()
        assert not isinstance(app.screen, RemedyModal)
        # a plan shown anyway cannot be confirmed, and the launch path refuses it
        from tui.remedy.plan import plan as make_plan

        p = make_plan("clip", runner_root / "base")
        assert p.launchable
        app.launch_remedy(p)
        await wait_until(pilot, lambda: isinstance(app.screen, RemedyModal))
        await pilot.pause()
        modal = app.screen
        assert isinstance(modal, RemedyModal)
        assert confirm_button(modal).disabled and "--readonly" in screen_text(app)
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, RemedyModal)
        await pilot.press("escape")
        assert app.launch_plan(p) is False
        app.stop_job()
        await pilot.pause()
        assert app.supervisor.jobs == {}
    assert not list((runner_root).glob("clip-*"))


async def test_real_study_launched_from_the_modal(runner_root: Path) -> None:
    """c on a runner-made run, confirm: a real 2-trial CPU study of the digits MLP (30 steps
    each) runs as a child; both trials appear in the tree, followed live, and the jobs panel
    shows the child until it exits 0."""
    app = make_app([runner_root])
    async with app.run_test(size=SIZE) as pilot:
        modal = await open_plan(pilot, app, "c", NodeRef("run", "base"))
        assert modal.plan.launchable
        await pilot.click("#plan-confirm")
        await wait_until(pilot, lambda: bool(app.supervisor.jobs), timeout=20)
        (job,) = app.supervisor.jobs.values()
        assert job.kind == "clip" and job.proc is not None
        panel = app.query_one(JobsPanel)
        await wait_until(pilot, lambda: any(v.id == job.id for v in panel.views))

        def trials_in_tree() -> list[str]:
            ids = app.query_one(RunTree).run_ids
            return sorted(r for r in ids if r.startswith("clip-"))

        await wait_until(pilot, lambda: len(trials_in_tree()) == 2, timeout=150)
        t0, t1 = trials_in_tree()
        assert t0.endswith("/t000") and t1.endswith("/t001")
        study_id = t0.rsplit("/", 1)[0]
        assert study_id in app.studies  # grouped as a study of two trials
        # followed live: the trials' points are read as they are written
        await wait_until(pilot, lambda: app.runs[t1].store.count("loss") >= 30, timeout=150)
        await wait_until(pilot, lambda: job.state != "running", timeout=150)
        assert (job.state, job.exit_code) == ("exited", 0), job.last_lines(20)
        await wait_until(pilot, lambda: app._jobs_timer is None)  # idle: no polling timer
        text = screen_text(app)
        assert "clip" in text and "exited (exit 0)" in text
        record = json.loads((runner_root / t0 / "run.json").read_text())
        assert record["remedy"]["kind"] == "clip"
        assert record["spec"]["clip_norm"] == modal.plan.trials()[0]["clip_norm"]
        await pilot.press("q")  # nothing runs: quits at once
        await wait_exited(pilot, app)
    assert defunct_children() == []
    assert job.study_dir is not None and job.study_dir.parent == runner_root.resolve()
    # its own trials said "running" in run.json while they ran: never adopted as strangers
    assert list(app.supervisor.jobs) == [job.id]


async def test_study_outside_the_watched_roots_is_followed(tmp_path: Path) -> None:
    """A study whose output folder is outside every watched root: its folder becomes a root."""
    root = tmp_path / "runs"
    write_runner_run(root / "base")
    elsewhere = tmp_path / "elsewhere"
    fake = tmp_path / "fake_runner.py"
    # prints its study folder first, as `python -m runner` does, then writes a trial
    fake.write_text(
        "import json, sys, time\n"
        "from pathlib import Path\n"
        "study = Path(sys.argv[1]) / 'clip-20260101-000000'\n"
        "(study / 't000').mkdir(parents=True)\n"
        "print(study, flush=True)\n"
        "with open(study / 't000' / 'metrics.jsonl', 'w') as fh:\n"
        "    for s in range(20):\n"
        "        fh.write(json.dumps({'step': s, 'loss': 1.0 / (s + 1)}) + '\\n')\n"
    )
    app = make_app([root])
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: "base" in app.runs)
        job = app.supervisor.spawn([sys.executable, str(fake), str(elsewhere)], "clip", elsewhere)
        app.watch_jobs()
        want = "clip-20260101-000000:t000"
        await wait_until(pilot, lambda: want in app.query_one(RunTree).run_ids, timeout=20)
        await wait_until(pilot, lambda: app.runs[want].store.count("loss") == 20)
        assert "base" in app.runs  # the first root's runs keep their ids
        assert app.engine is not None and elsewhere / "clip-20260101-000000" in app.engine.roots
        await wait_until(pilot, lambda: job.state == "exited")
    assert defunct_children() == []


def fixed_plan() -> Plan:
    """A plan with fixed paths and values (the snapshot must not depend on the machine)."""
    from runner import spec as rspec
    from tui.remedy.plan import Plan

    base = rspec.from_dict(
        {
            "workload": "digits_mlp",
            "name": "base",
            "max_train_steps": 30,
            "device": "cpu",
            "optimizer": {"name": "adam", "lr": 0.001},
            "schedule": {"kind": "constant"},
        }
    )
    assert isinstance(base, rspec.RunSpec)
    trials = [{"clip_norm": 1.637}, {"clip_norm": 1.318}]
    spec = rspec.from_dict(
        {**rspec.to_dict(base), "study": {"name": "clip", "search": "list", "list": trials}}
    )
    assert isinstance(spec, rspec.StudySpec)
    return Plan(
        "clip",
        "/data/runs/base",
        computed={"run": ".", "p90": 1.637, "p75": 1.318, "points": 300},
        out="/data/runs",
        spec=spec,
        notes=[
            "R23: clip_norm 1.637 = p90 of 300 unclipped norms; tighter trial 1.318 (p75). "
            "Over 50% clipped: lower the learning rate instead (R24)"
        ],
    )


def test_snapshot_plan_modal(
    tmp_path: Path, snap_compare: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The modal over an empty dashboard (the findings table behind it is not what is
    tested here, and its column widths settle at an idle moment a loaded machine may miss)."""
    import sys

    import tui.remedy.preview as preview_mod
    import tui.widgets.remedy_modal as modal_mod

    monkeypatch.setattr(modal_mod, "device_for_trials", lambda n: ["cpu"] * n)
    # what will run names the interpreter and the working folder: fixed for the snapshot
    monkeypatch.setattr(preview_mod, "device_for_trials", lambda n: ["cpu"] * n)
    monkeypatch.setattr(preview_mod, "child_cwd", lambda: "/home/user/.local/state/tunetop/jobs")
    monkeypatch.setattr(preview_mod, "launch_dir", lambda: "/home/user")
    # the env line shows what changes from this environment: make it the same on every machine
    from runner.child import DROPPED, PATH_LISTS

    for key in (*PATH_LISTS, *DROPPED, "PYTHONSAFEPATH"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    (tmp_path / "runs").mkdir()
    app = make_app([tmp_path / "runs"], poll=60.0)

    async def run_before(pilot: Any) -> None:
        await wait_until(pilot, lambda: app.watcher is not None)
        app.launch_remedy(fixed_plan())
        await wait_until(pilot, lambda: isinstance(app.screen, RemedyModal))
        await pilot.pause()

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_extend_plan_shows_old_and_new_schedules_side_by_side(tmp_path: Path) -> None:
    """R6: `l` plans a longer round; the modal draws both learning-rate schedules."""
    from tui.remedy.plan import plan
    from tui.widgets.remedy_modal import schedules_side_by_side

    base = write_runner_run(tmp_path / "runs" / "base", steps=300, lr=0.01)
    p = plan("extend", base)
    assert p.launchable, p.missing
    text = schedules_side_by_side(p).plain
    old, new = [line for line in text.splitlines() if line.startswith(("old", "new"))]
    assert "R6" in text
    old_bars, new_bars = old.split("steps ", 1)[1], new.split("steps ", 1)[1]
    # the new schedule spans the whole axis; the old one ends halfway (2x the steps)
    assert new_bars.strip() and len(old_bars.rstrip()) < len(new_bars.rstrip())


def _plant_command(run: Path, command: list[str]) -> None:
    """Turn a runner-made run into one whose run.json a stranger wrote: spec.command set,
    owned by uid 1001, group-writable (the tests run as root)."""
    import os

    record = json.loads((run / "run.json").read_text())
    record["spec"].pop("workload", None)
    record["spec"]["command"] = command
    (run / "run.json").write_text(json.dumps(record))
    os.chown(run / "run.json", 1001, 1001)
    os.chmod(run / "run.json", 0o664)


@pytest.mark.skipif(sys.platform != "linux", reason="chown to another uid: Linux, as root")
async def test_untrusted_command_is_shown_marked_and_cannot_be_launched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 14: the modal shows what would run in a warning frame, says why it is not trusted
    and how to trust it, and refuses to launch."""
    import os

    if os.geteuid() != 0:
        pytest.skip("chown to another uid needs root")
    from textual.widgets import Static

    from tui.remedy.preview import FROM_TREE
    from tui.widgets.remedy_modal import launch_block

    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    root = tmp_path / "runs"
    _plant_command(write_runner_run(root / "planted", steps=30), ["sh", "-c", "touch /tmp/x"])
    write_runner_run(root / "mine", steps=30)
    app = make_app([root])
    launched = record_launches(app)
    async with app.run_test(size=SIZE) as pilot:
        modal = await open_plan(pilot, app, "c", NodeRef("run", "planted"))
        plan = modal.plan
        assert not plan.launchable and plan.refusals
        assert "owned by uid 1001 and group-writable" in plan.refusals[0]
        assert plan.spec is not None  # computed in full, shown, not launchable
        block = modal.query_one("#plan-launch", Static)
        assert block.has_class("from-tree")
        shown = launch_block(plan).plain
        assert f"{FROM_TREE}: {root / 'planted' / 'run.json'}" in shown
        assert "sh -c 'touch /tmp/x'" in shown  # the exact command, as it would run
        trust_text = screen_text(app)
        assert "not trusted: planted/run.json is owned by uid 1001" in trust_text
        assert "to trust it: add" in trust_text
        assert "cannot launch, not trusted" in modal.refusal()
        assert confirm_button(modal).disabled
        await pilot.press("ctrl+s")
        await pilot.pause()
        assert isinstance(app.screen, RemedyModal) and not launched
        await pilot.press("escape")
        await wait_until(pilot, lambda: not isinstance(app.screen, RemedyModal))
        # the user's own run beside it: no warning frame, launchable
        modal = await open_plan(pilot, app, "c", NodeRef("run", "mine"))
        assert modal.plan.launchable, modal.plan.missing
        assert not modal.query_one("#plan-launch", Static).has_class("from-tree")
        assert not confirm_button(modal).disabled
