"""Attacks 1-4 of issue 14: nothing a stranger writes in a watched folder decides what runs.

Each test plants a payload as the attacker that would write the canary (a file in the victim's
private 0700 folder, which the attacker cannot write) if tunetop ever ran it, drives the real
command line as the victim, waits until everything it launched has ended (or a deadline, then
kills it), and asserts the canary was never written. Trust rule (DESIGN.md "tunetop.toml"): what
runs comes only from the user's config folder or from files the user owns in folders nobody
else may write; the team folder here is 0777, so nothing the attacker puts in it is trusted.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from hostile.harness import (
    Attacker,
    Layout,
    canary_command,
    canary_python,
    metrics_lines,
    mkdir,
    no_traceback,
    pickle_payload,
    rename,
    run,
    run_json,
    runner_spec,
    symlink,
    wait_for,
    write,
    write_json,
    write_victim_run,
)

RUNNER_DEADLINE = 180.0  # a runner child imports torch: slow on a loaded 2-core machine


def _command_spec(canary: Path, steps: int = 120, lr: float = 0.1) -> dict[str, object]:
    spec = runner_spec(steps, lr)
    spec.pop("workload", None)
    spec["command"] = canary_command(canary)
    return spec


def _assert_no_canary(shared: Layout, what: str) -> None:
    shared.launched_settle(until=shared.canary.exists)
    assert not shared.canary.exists(), f"{what}: the planted payload ran as the victim"


# -- 1. run.json decides what runs --------------------------------------------------------------


@pytest.mark.parametrize(
    "payload", ["command", pytest.param("workload_file", marks=pytest.mark.slow)]
)
def test_planted_run_json_is_not_relaunched_by_plan_warmup(
    shared: Layout, attacker: Attacker, payload: str
) -> None:
    """Attack 1: a diverged run whose run.json holds `spec.command` (any argv) or a file-path
    `spec.workload`; `tunetop plan warmup X --launch` must not run either."""
    evil = shared.team / "evil"
    if payload == "command":
        spec = _command_spec(shared.canary)
        ops = []
    else:
        spec = runner_spec(120, 0.1, workload=f"{evil}/payload.py:main")
        ops = [write(evil / "payload.py", canary_python(shared.canary) + "def main(**k): pass\n")]
    attacker.plant(
        *ops,
        write(evil / "metrics.jsonl", metrics_lines(120, 0.1, diverge_at=60)),
        write_json(evil / "run.json", run_json(spec, status="diverged")),
    )
    res = shared.tunetop("plan", "warmup", str(evil), "--launch", "--out", str(shared.home / "out"))
    assert not res.timed_out, res.why()
    no_traceback(res)
    _assert_no_canary(shared, f"plan warmup --launch on a planted {payload}")


def test_planted_trial_is_not_the_baseline_of_the_users_study(
    shared: Layout, attacker: Attacker
) -> None:
    """Attack 1: the user's own study (in the team folder, which the team may add to); the
    attacker adds a trial with the smallest diverging rate, so `w` / `plan warmup` on the study
    would pick it as the baseline without the user ever selecting it."""
    study = shared.team / "study"
    study.mkdir()
    study.chmod(0o777)  # the team's study folder: anyone in it may add a trial
    write_victim_run(study / "t000", 120, lr=0.01)
    write_victim_run(study / "t001", 120, lr=0.1, diverge_at=50)
    attacker.plant(
        write(study / "t002" / "metrics.jsonl", metrics_lines(120, 0.03, diverge_at=40)),
        write_json(
            study / "t002" / "run.json",
            run_json(_command_spec(shared.canary, 120, 0.03), status="diverged"),
        ),
    )
    res = shared.tunetop(
        "plan", "warmup", str(study), "--launch", "--out", str(shared.home / "out")
    )
    assert not res.timed_out, res.why()
    no_traceback(res)
    _assert_no_canary(shared, "plan warmup --launch on a study with a planted trial")


def test_warmup_apply_does_not_follow_a_planted_baseline(
    shared: Layout, attacker: Attacker
) -> None:
    """Attack 1: a finished warmup study planted in the tree whose `remedy.baseline` names a
    run anywhere (here a world-writable folder outside the watched root) holding a command."""
    drop = shared.base / "drop"
    drop.mkdir()
    drop.chmod(0o777)
    evil_base = drop / "base"
    ws = shared.team / "warmup-20260101-000000"
    remedy = {"kind": "warmup", "source": str(evil_base), "baseline": str(evil_base)}
    ops = [
        write(evil_base / "metrics.jsonl", metrics_lines(120, 0.01, diverge_at=60)),
        write_json(evil_base / "run.json", run_json(_command_spec(shared.canary, 120, 0.01))),
    ]
    for i, w in enumerate((10, 100)):
        spec = runner_spec(0, 0.1)
        spec["schedule"] = {"kind": "constant", "warmup_steps": w, "post_warmup_steps": 2 * w}
        ops += [
            write(ws / f"t{i:03d}" / "metrics.jsonl", metrics_lines(3 * w, 0.1)),
            write_json(ws / f"t{i:03d}" / "run.json", run_json(spec, remedy=remedy)),
        ]
    attacker.plant(*ops)
    res = shared.tunetop(
        "plan", "warmup-apply", str(ws), "--launch", "--out", str(shared.home / "out")
    )
    assert not res.timed_out, res.why()
    no_traceback(res)
    _assert_no_canary(shared, "plan warmup-apply --launch following remedy.baseline")


# -- 2. a planted tunetop.toml supplies the launch template ---------------------------------------


@pytest.mark.parametrize(
    "where", ["run_folder", pytest.param("folder_above", marks=pytest.mark.slow)]
)
def test_planted_launch_template_is_not_used(
    shared: Layout, attacker: Attacker, where: str
) -> None:
    """Attack 2: a run from another tool (no run.json) is relaunched through a `[launch]
    command` template; the user's own config has one, the attacker's nearer tunetop.toml (in
    the run's folder, or in the folder above it) must not replace it."""
    marker = shared.home / "users-template-ran"
    shared.user_config(
        f'[launch]\ncommand = ["/bin/sh", "-c", "echo ok >> {marker}", "sh", "{{run_dir}}"]\n'
    )
    evil_toml = (
        "readonly = false\n[launch]\ncommand = " + json.dumps(canary_command(shared.canary)) + "\n"
    )
    if where == "run_folder":
        run_dir = shared.team / "other_tool_run"
        attacker.plant(
            write(run_dir / "metrics.jsonl", metrics_lines(120, 0.1, diverge_at=60)),
            write(run_dir / "tunetop.toml", evil_toml),
        )
    else:
        run_dir = write_victim_run(shared.team / "users_run", 120, 0.1, diverge_at=60)
        (run_dir / "run.json").unlink()  # the user's run from another tool: no run.json
        attacker.plant(write(shared.team / "tunetop.toml", evil_toml))
    res = shared.tunetop(
        "plan", "warmup", str(run_dir), "--launch", "--out", str(shared.home / "out")
    )
    assert not res.timed_out, res.why()
    no_traceback(res)
    _assert_no_canary(shared, f"a tunetop.toml planted in the {where}")


# -- 3. the runner imports from the current directory ---------------------------------------------


@pytest.mark.parametrize("module", ["runner.py", pytest.param("numpy.py", marks=pytest.mark.slow)])
def test_modules_planted_in_the_cwd_are_not_imported(
    shared: Layout, attacker: Attacker, module: str
) -> None:
    """Attack 3: the user relaunches their own clean run (trusted: their folder, 0755) while
    their shell sits in a team folder where the attacker put runner.py / numpy.py. The children
    (`python -m runner` for the study and for each trial) must not import from the cwd."""
    mine = shared.root / "mine"
    mine.mkdir()
    base = write_victim_run(mine / "base", 30, 0.001)
    work = shared.team / "work"
    attacker.plant(write(work / module, canary_python(shared.canary)))
    out = shared.home / "out"
    res = shared.tunetop("plan", "probe", str(base), "--launch", "--out", str(out), cwd=work)
    assert not res.timed_out, res.why()
    no_traceback(res)
    assert res.rc == 0, "the user's own clean run must stay launchable\n" + res.why()

    def trial_trained() -> bool:  # both children started and imported everything by then
        return any(p.stat().st_size > 0 for p in out.glob("*/t000/metrics.jsonl"))

    shared.launched_settle(
        until=lambda: shared.canary.exists() or trial_trained(), timeout=RUNNER_DEADLINE
    )
    assert not shared.canary.exists(), f"a {module} in the cwd was imported by a child"


# -- 4. pickle and the trial folder ---------------------------------------------------------------


def _runner(shared: Layout, *args: str, cwd: Path | None = None) -> object:
    return run(
        [sys.executable, "-m", "runner", *args],
        env=shared.env,
        cwd=cwd or shared.home,
        timeout=RUNNER_DEADLINE,
    )


@pytest.mark.parametrize("owner", ["attacker", "user"])
def test_resume_does_not_unpickle_a_planted_checkpoint(
    shared: Layout, attacker: Attacker, owner: str
) -> None:
    """Attack 4: `python -m runner --resume RUN` on a run whose checkpoints/last.pt is a pickle
    payload. In the attacker's folder (refused, or loaded weights_only), and in the user's own
    folder (a checkpoint the user copied from somewhere: only weights_only=True stops it)."""
    spec = runner_spec(30, 0.001)
    files = {
        "metrics.jsonl": metrics_lines(10, 0.001).encode(),
        "run.json": json.dumps(run_json(spec, status="stopped")).encode(),
        "checkpoints/last.pt": pickle_payload(shared.canary),
    }
    if owner == "attacker":
        evil = shared.team / "resumable"
        attacker.plant(*(write(evil / name, data) for name, data in files.items()))
    else:
        evil = shared.root / "mine" / "resumable"
        for name, data in files.items():
            (evil / name).parent.mkdir(parents=True, exist_ok=True)
            (evil / name).write_bytes(data)
    res = _runner(shared, "--resume", str(evil))
    assert not res.timed_out, res.why()  # type: ignore[attr-defined]
    _assert_no_canary(shared, f"--resume on a pickle checkpoint in the {owner}'s folder")


@pytest.mark.parametrize("payload", ["spec_command", "checkpoint"])
def test_a_trial_does_not_read_its_spec_or_resume_from_the_shared_tree(
    shared: Layout, attacker: Attacker, payload: str
) -> None:
    """Attack 4: a study's child is started on a trial folder; if that folder was swapped (the
    attacker can rename entries of a shared folder), the child must not take its spec.toml
    from it nor resume from a checkpoints/ folder found there (the spec comes through a private
    channel, no automatic resume). Replayed here by pointing the child at the planted folder."""
    from runner import spec as rspec

    trial = shared.team / "swapped" / "t000"
    if payload == "spec_command":
        spec = rspec.from_dict(_command_spec(shared.canary, 30, 0.001))
        ops = [write(trial / "spec.toml", rspec.to_toml(spec))]
    else:
        spec = rspec.from_dict(runner_spec(30, 0.001))
        ops = [
            write(trial / "spec.toml", rspec.to_toml(spec)),
            write(trial / "checkpoints" / "last.pt", pickle_payload(shared.canary)),
        ]
    attacker.plant(*ops)
    res = _runner(shared, "--trial", str(trial))
    assert not res.timed_out, res.why()  # type: ignore[attr-defined]
    _assert_no_canary(shared, f"a trial child on a swapped folder ({payload})")


SWAPPER = textwrap.dedent(
    r"""
    # The attacker's race: as soon as the victim's study has made t000/spec.toml in the shared
    # folder, move the study folder away and put a symlink to the attacker's own folder there.
    import os, sys, time
    team, mine = sys.argv[1], sys.argv[2]
    deadline = time.monotonic() + 170
    while time.monotonic() < deadline:
        for name in os.listdir(team):
            study = os.path.join(team, name)
            if name.startswith("swap-") and not os.path.islink(study):
                if os.path.exists(os.path.join(study, "t000", "spec.toml")):
                    os.rename(study, os.path.join(team, ".moved-" + name))
                    os.symlink(mine, study)
                    raise SystemExit(0)
        time.sleep(0.002)
    """
)


@pytest.mark.slow
def test_a_trial_folder_swapped_for_a_symlink_mid_study(shared: Layout, attacker: Attacker) -> None:
    """Attack 4, the real race: the user runs a study into the team folder; the attacker swaps
    the study folder for a symlink to a folder holding a t000/spec.toml with a command, a
    pickle checkpoint, and an output.log symlinked to a private file of the user's. Nothing
    planted runs, and the private file is not written through the planted link."""
    from runner import spec as rspec

    private = shared.home / "private.txt"
    private.write_text("the user's own file\n")
    mine = shared.base / "attacker_study"
    mine.mkdir()
    mine.chmod(0o777)
    evil = rspec.from_dict(_command_spec(shared.canary, 30, 0.001))
    attacker.plant(
        write(mine / "t000" / "spec.toml", rspec.to_toml(evil)),
        write(mine / "t000" / "checkpoints" / "last.pt", pickle_payload(shared.canary)),
        symlink(mine / "t000" / "output.log", private),
    )
    study_toml = shared.home / "study.toml"
    base = rspec.from_dict(
        {
            **runner_spec(20, 0.001),
            "name": "swap",
            "study": {"name": "swap", "search": "list", "list": [{"optimizer.lr": 0.001}]},
        }
    )
    study_toml.write_text(rspec.to_toml(base))
    racer = attacker.popen(SWAPPER, str(shared.team), str(mine))
    try:
        res = _runner(shared, str(study_toml), "--out", str(shared.team))
        assert not res.timed_out, res.why()  # type: ignore[attr-defined]
    finally:
        racer.kill()
        racer.wait()
    _assert_no_canary(shared, "a study whose folder was swapped for a symlink")
    assert private.read_text() == "the user's own file\n", "written through a planted symlink"


def test_the_swapper_can_win(shared: Layout, attacker: Attacker) -> None:
    """The race test's attacker does what it claims: given a study folder that gets a
    t000/spec.toml, it swaps it for a symlink (so a pass above is not a race never run)."""
    mine = shared.base / "attacker_study"
    mine.mkdir()
    racer = attacker.popen(SWAPPER, str(shared.team), str(mine))
    try:
        study = shared.team / "swap-20260101-000000"
        (study / "t000").mkdir(parents=True)
        (study / "t000" / "spec.toml").write_text("x = 1\n")
        assert wait_for(study.is_symlink, timeout=20), "the swapper did not swap"
        assert study.resolve() == mine.resolve()
    finally:
        racer.kill()
        racer.wait()
    attacker.plant(mkdir(shared.team / "x"), rename(shared.team / "x", shared.team / "y"))
    assert (shared.team / "y").is_dir() and (shared.team / "y").stat().st_uid == attacker.uid
