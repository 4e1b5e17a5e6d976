"""Plan arithmetic for each remedy on fixed inputs (issue 6 item 7), the 11,000-step example
included. The inputs are small hand-written logs: they test arithmetic, not detection."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from runner import spec as rspec
from tui.remedy.plan import clip_thresholds, plan, warmup_lengths


def write_run(
    folder: Path,
    losses: list[float],
    lr: float,
    max_train_steps: int,
    grad_norms: list[float] | None = None,
    remedy: dict | None = None,
    warmup: int = 0,
    status: str = "finished",
    runner: bool = True,
) -> Path:
    folder.mkdir(parents=True)
    with open(folder / "metrics.jsonl", "w") as fh:
        for i, loss in enumerate(losses):
            row = {"step": i, "time": 1.0e9 + i, "loss": loss, "lr": lr}
            if grad_norms is not None:
                row["grad_norm"] = grad_norms[i]
            fh.write(json.dumps(row) + "\n")
    if not runner:  # the user's own code: its config says how long it trains
        (folder / "config.json").write_text(json.dumps({"max_steps": max_train_steps}))
    else:
        spec = rspec.RunSpec(workload="digits_mlp", max_train_steps=max_train_steps)
        spec.optimizer.lr = lr
        spec.schedule.warmup_steps = warmup
        (folder / "run.json").write_text(
            json.dumps(
                {
                    "spec": rspec.to_dict(spec),
                    "hparams": rspec.flatten(spec),
                    "max_train_steps": max_train_steps,
                    "total_steps": spec.total_steps,
                    "status": status,
                    "pid": 1,
                    "started": 1.0e9,
                    "ended": 1.0e9 + 10,
                    "exit_code": 0,
                    "remedy": remedy,
                }
            )
        )
    return folder


def write_fit_study(folder: Path) -> None:
    """A fit study (R4) of three rates: loss falls by a factor e every `tau` steps, faster at
    higher rates."""
    remedy = {"kind": "fit", "source": "x"}
    for lr, tau in ((0.001, 400.0), (0.01, 100.0), (0.1, 25.0)):
        write_run(
            folder / f"lr={lr}",
            [2.0 * math.exp(-i / tau) for i in range(600)],
            lr,
            600,
            remedy=remedy,
        )


def healthy(n: int = 60) -> list[float]:
    return [2.0 * math.exp(-i / 20) + 0.1 for i in range(n)]


def diverging(n: int = 60) -> list[float]:
    return [2.0 - i * 0.01 for i in range(20)] + [float("nan")] * (n - 20)


def test_warmup_lengths_are_powers_of_ten_within_ten_percent() -> None:
    assert warmup_lengths(1500) == [10, 100]
    assert warmup_lengths(10_000) == [10, 100, 1000]
    assert warmup_lengths(99) == []


def test_warmup_plan_from_a_sweep_whose_top_rate_diverged(tmp_path: Path) -> None:
    study = tmp_path / "sweep"
    write_run(study / "lr=0.01", healthy(), 0.01, 1500)
    write_run(study / "lr=0.1", healthy(), 0.1, 1500)
    write_run(study / "lr=1.0", diverging(), 1.0, 1500)
    p = plan("warmup", study)
    assert p.missing == []
    assert p.computed["unstable_lr"] == 1.0
    assert p.computed["base_lr"] == 10.0
    assert p.computed["max_train_steps"] == 1500
    d = p.to_json()
    assert d["plan"]["kind"] == "warmup"
    spec = d["spec"]
    assert spec["optimizer"]["lr"] == 10.0
    assert spec["schedule"]["kind"] == "constant"
    assert spec["max_train_steps"] == 0
    assert spec["study"]["search"] == "list"
    assert spec["study"]["list"] == [
        {"schedule.warmup_steps": 10, "schedule.post_warmup_steps": 20},
        {"schedule.warmup_steps": 100, "schedule.post_warmup_steps": 200},
    ]
    # the runner accepts exactly this spec
    loaded = rspec.loads(rspec.to_toml(p.spec))
    assert isinstance(loaded, rspec.StudySpec)
    assert p.remedy["kind"] == "warmup"
    assert p.remedy["baseline"].endswith("lr=1.0")


def test_warmup_factor_100(tmp_path: Path) -> None:
    write_run(tmp_path / "run", diverging(), 0.5, 20_000)
    p = plan("warmup", tmp_path / "run", factor=100)
    assert p.computed["base_lr"] == 50.0
    assert p.computed["warmup_steps"] == [10, 100, 1000]


def test_warmup_needs_an_unstable_run(tmp_path: Path) -> None:
    write_run(tmp_path / "run", healthy(), 0.01, 1500)
    p = plan("warmup", tmp_path / "run")
    assert p.missing and "unstable" in p.missing[0]
    assert not p.launchable


def test_warmup_apply_eleven_thousand_steps(tmp_path: Path) -> None:
    baseline = write_run(tmp_path / "base", diverging(), 0.1, 10_000)
    study = tmp_path / "warmup-20261125-000000"
    remedy = {"kind": "warmup", "source": str(baseline), "baseline": str(baseline)}
    curves = {
        10: diverging(),  # non-finite: collapsed
        100: [1.0 + i for i in range(60)],  # blows up past 5x: collapsed
        1000: healthy(),  # trains
        # 10_000 would exceed 10% of 10,000 steps: not in the study
    }
    for i, (w, losses) in enumerate(curves.items()):
        write_run(study / f"t{i:03d}", losses, 1.0, 0, remedy=remedy, warmup=w)
    p = plan("warmup-apply", study)
    assert p.missing == [], p.missing
    assert p.computed["warmup_steps"] == 1000
    assert p.computed["total_steps"] == 11_000
    assert [t["collapsed"] for t in p.computed["trials"]] == [True, True, False]
    trials = p.to_json()["spec"]["study"]["list"]
    assert trials == [
        {"optimizer.lr": 0.1, "schedule.warmup_steps": 0, "schedule.post_warmup_steps": 0},
        {"optimizer.lr": 1.0, "schedule.warmup_steps": 1000, "schedule.post_warmup_steps": 0},
    ]
    specs = [rspec.apply_overrides(p.spec.base, t) for t in trials]
    assert specs[1].total_steps == 11_000
    assert specs[0].total_steps == 10_000
    assert any("R21" in n for n in p.notes)  # 1,000 of 10,000 is over 5%


def test_warmup_apply_waits_for_the_study(tmp_path: Path) -> None:
    baseline = write_run(tmp_path / "base", diverging(), 0.1, 10_000)
    remedy = {"kind": "warmup", "source": str(baseline), "baseline": str(baseline)}
    write_run(
        tmp_path / "s" / "t000", healthy(), 1.0, 0, remedy=remedy, warmup=10, status="running"
    )
    write_run(tmp_path / "s" / "t001", healthy(), 1.0, 0, remedy=remedy, warmup=100)
    p = plan("warmup-apply", tmp_path / "s")
    assert any("still running" in m for m in p.missing)


def test_clip_plan_uses_the_p90_of_unclipped_norms(tmp_path: Path) -> None:
    norms = [float(i % 10 + 1) for i in range(60)]
    write_run(tmp_path / "run", healthy(), 0.01, 1000, grad_norms=norms)
    p = plan("clip", tmp_path / "run")
    p90, p75 = clip_thresholds(__import__("numpy").array(norms))
    assert p.computed["p90"] == pytest.approx(p90)
    assert [t["clip_norm"] for t in p.trials()] == [float(f"{p90:.4g}"), float(f"{p75:.4g}")]
    assert p.trials()[1]["clip_norm"] < p.trials()[0]["clip_norm"]


def test_clip_plan_without_grad_norm_says_what_is_missing(tmp_path: Path) -> None:
    write_run(tmp_path / "run", healthy(), 0.01, 1000)
    p = plan("clip", tmp_path / "run")
    assert any("grad_norm" in m and "R14" in m for m in p.missing)


def test_probe_doubles_the_best_rate_for_500_steps(tmp_path: Path) -> None:
    study = tmp_path / "sweep"
    write_run(study / "lr=0.01", [3.0 - i * 0.01 for i in range(60)], 0.01, 2000)
    write_run(study / "lr=0.1", healthy(), 0.1, 2000)  # the best
    write_run(study / "lr=1.0", diverging(), 1.0, 2000)
    p = plan("probe", study)
    assert p.computed["best_lr"] == 0.1
    spec = p.to_json()["spec"]
    assert spec["max_train_steps"] == 500
    assert spec["eval_every"] == 1
    assert spec["study"]["list"] == [{"optimizer.lr": 0.2}]


def test_external_run_without_template_is_shown_not_launched(tmp_path: Path) -> None:
    write_run(tmp_path / "run", diverging(), 0.3, 5000, runner=False)
    p = plan("warmup", tmp_path / "run")
    assert not p.launchable
    assert any("launch" in m for m in p.missing)
    assert p.to_json()["spec"]["optimizer"]["lr"] == 3.0  # what is known is still shown


def test_external_run_relaunches_through_the_template(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run", diverging(), 0.3, 5000, runner=False)
    (tmp_path / "tunetop.toml").write_text(
        '[launch]\ncommand = ["python", "train.py", "--lr", "{lr}", '
        '"--warmup", "{warmup_steps}", "--out", "{run_dir}"]\n'
    )
    p = plan("warmup", run)
    assert p.launchable, p.missing
    base = p.spec.base
    assert base.command is not None and base.workload is None
    trial = rspec.apply_overrides(base, p.trials()[0])
    argv = rspec.format_placeholders(base.command, trial, "/out/t000")
    assert argv == ["python", "train.py", "--lr", "3.0", "--warmup", "10", "--out", "/out/t000"]


def test_template_value_with_spaces_and_semicolon_stays_one_argument(tmp_path: Path) -> None:
    spec = rspec.RunSpec(workload=None, command=["echo", "{workload_options.note}"])
    spec.workload_options = {"note": "a b; touch /tmp/pwned"}
    argv = rspec.format_placeholders(spec.command, spec, str(tmp_path))
    assert argv == ["echo", "a b; touch /tmp/pwned"]
    out = subprocess.run(argv, capture_output=True, text=True, check=True)
    assert out.stdout == "a b; touch /tmp/pwned\n"


def test_plan_cli_exit_codes(tmp_path: Path) -> None:
    write_run(tmp_path / "run", diverging(), 0.5, 2000)
    ok = subprocess.run(
        [sys.executable, "-m", "tui", "plan", "warmup", str(tmp_path / "run"), "--json"],
        capture_output=True,
        text=True,
    )
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["plan"]["computed"]["base_lr"] == 5.0
    write_run(tmp_path / "good", healthy(), 0.5, 2000)
    missing = subprocess.run(
        [sys.executable, "-m", "tui", "plan", "warmup", str(tmp_path / "good")],
        capture_output=True,
        text=True,
    )
    assert missing.returncode == 1
    usage = subprocess.run(
        [sys.executable, "-m", "tui", "plan", "bogus", str(tmp_path)],
        capture_output=True,
        text=True,
    )
    assert usage.returncode == 2


def test_probe_cites_r15_and_clip_cites_r23_r24(tmp_path: Path) -> None:
    norms = [1.0 + (i % 7) for i in range(60)]
    write_run(tmp_path / "run", healthy(), 0.05, 3000, grad_norms=norms)
    assert any("R15" in n for n in plan("probe", tmp_path / "run").notes)
    notes = plan("clip", tmp_path / "run").notes
    assert any("R23" in n and "R24" in n for n in notes)


def test_fit_plan_is_a_constant_rate_grid_without_regularization(tmp_path: Path) -> None:
    """R4: constant rate, no decay, no clipping, N = the target's max_train_steps."""
    write_run(tmp_path / "run", healthy(), 0.01, 4000)
    p = plan("fit", tmp_path / "run")
    assert p.launchable, p.missing
    spec = p.to_json()["spec"]
    assert spec["schedule"]["kind"] == "constant"
    assert spec["schedule"]["warmup_steps"] == 0
    assert "clip_norm" not in spec
    assert spec["max_train_steps"] == 4000
    assert [t["optimizer.lr"] for t in spec["study"]["list"]] == [0.001, 0.003, 0.01, 0.03, 0.1]


def test_extend_plan_stretches_cosine_and_lengthens_linear_constant_phase(tmp_path: Path) -> None:
    """R6: cosine keeps the base rate and stretches max_train_steps; linear keeps the decay
    length and lengthens the constant phase before it."""
    write_run(tmp_path / "cos", healthy(), 0.01, 1000)
    p = plan("extend", tmp_path / "cos")
    assert p.trials() == [{"max_train_steps": 2000}]
    assert any("R6" in n for n in p.notes)
    lin = write_run(tmp_path / "lin", healthy(), 0.01, 1000)
    run_json = json.loads((lin / "run.json").read_text())
    run_json["spec"]["schedule"]["kind"] = "linear"
    (lin / "run.json").write_text(json.dumps(run_json))
    p = plan("extend", lin)
    assert p.trials() == [{"schedule.post_warmup_steps": 1000}]
    specs = [rspec.apply_overrides(p.spec.base, t) for t in p.trials()]
    assert specs[0].max_train_steps == 1000 and specs[0].total_steps == 2000


def test_steps_to_fit_finding_and_its_r5_edge_warning(tmp_path: Path) -> None:
    from tui.diagnose.fit import steps_to_fit
    from tui.logs.workspace import Workspace

    write_fit_study(tmp_path / "fit")
    ws = Workspace([tmp_path / "fit"])
    ws.refresh()
    study = ws.studies["."]
    found = steps_to_fit(study)
    kinds = [f.kind for f in found]
    assert kinds == ["steps_to_fit", "best_at_search_boundary"]
    fit = found[0]
    assert fit.rule == "R4" and fit.evidence["lr"] == 0.1
    # level = 1% of 2.0; exp(-i/25) <= 0.01 from i = 116 (window of 5 -> +4)
    assert abs(fit.step - 119) <= 5
    assert found[1].evidence["side"] == "high"


def test_template_value_the_run_does_not_tell_is_missing(tmp_path: Path) -> None:
    """DESIGN's sample template passes {clip_norm}; a run without clipping cannot fill it,
    and no spec default may stand in for it."""
    run = write_run(tmp_path / "run", diverging(), 0.3, 5000, runner=False)
    (tmp_path / "tunetop.toml").write_text(
        '[launch]\ncommand = ["python", "train.py", "--lr", "{lr}", "--clip", "{clip_norm}"]\n'
    )
    warm = plan("warmup", run)
    assert not warm.launchable
    assert any(m.startswith("clip_norm") for m in warm.missing)
    norms = [float(i % 10 + 1) for i in range(60)]
    run2 = write_run(tmp_path / "run2", diverging(), 0.3, 5000, grad_norms=norms, runner=False)
    clip = plan("clip", run2)  # the clip study sets clip_norm in every trial
    assert clip.launchable, clip.missing


def test_fit_study_findings_come_through_diagnose_study(tmp_path: Path) -> None:
    from tui.check import run_check

    write_fit_study(tmp_path / "fit")
    report = run_check(str(tmp_path / "fit"))
    kinds = [f.kind for s in report.studies for f in s.findings]
    assert "steps_to_fit" in kinds


def test_instability_findings_name_remedies_in_r17_order(tmp_path: Path) -> None:
    """R17: warmup first, then clipping; lowering the learning rate is the last resort."""
    from tui.check import run_check

    write_run(tmp_path / "run", diverging(), 0.5, 2000)
    (div,) = [
        f for r in run_check(str(tmp_path)).runs for f in r.findings if f.kind == "divergence"
    ]
    msg = div.message
    assert "R17" in msg
    assert msg.index("warmup") < msg.index("clipping") < msg.index("lower the LR")


def test_a_warmup_study_is_not_flagged_for_differing_steps(tmp_path: Path) -> None:
    """R2 compares max_train_steps, which is 0 in every warmup-study trial (R18); their total
    steps (3W) differ by design."""
    from tui.check import run_check

    remedy = {"kind": "warmup", "source": "x"}
    for i, w in enumerate((10, 100)):
        folder = write_run(tmp_path / "s" / f"t{i:03d}", healthy(), 1.0, 0, remedy=remedy, warmup=w)
        run_json = json.loads((folder / "run.json").read_text())
        run_json["spec"]["schedule"]["post_warmup_steps"] = 2 * w
        run_json["total_steps"] = 3 * w
        (folder / "run.json").write_text(json.dumps(run_json))
    kinds = [f.kind for s in run_check(str(tmp_path / "s")).studies for f in s.findings]
    assert "steps_differ" not in kinds


def test_plan_shows_what_will_run(tmp_path: Path) -> None:
    """Issue 14 item 2: the JSON plan's `launch` block holds the exact argv of every trial, as
    runner/study.py makes it, the interpreter, the working folder, env changes and out."""
    import os

    from runner.child import LAUNCH_DIR_ENV
    from runner.state import jobs_dir as state_dir
    from runner.study import child_of
    from tui.remedy.cli import describe
    from tui.remedy.preview import TRIAL_SPEC_FILE

    run = write_run(tmp_path / "run", diverging(), 0.5, 2000)
    p = plan("warmup", run)
    launch = p.to_json()["plan"]["launch"]
    assert launch["interpreter"] == sys.executable
    # the study starts in the private state folder, never in the user's cwd (runner/child.py)
    assert launch["cwd"] == str(state_dir()) != os.getcwd()
    assert os.environ.get("PYTHONUNBUFFERED") == "1" or launch["env"]["PYTHONUNBUFFERED"] == "1"
    assert launch["env"][LAUNCH_DIR_ENV] == os.getcwd()
    assert launch["out"] == str(tmp_path)
    assert launch["from_tree"] is False and launch["workload"] == "digits_mlp"
    study_dir = Path(launch["study_dir"])
    assert study_dir.parent == tmp_path and study_dir.name.startswith("warmup-")
    remedy = {"kind": "warmup", "source": str(run)}
    spec = Path(TRIAL_SPEC_FILE)

    def shown(argv: list[str]) -> list[str]:  # the private spec's path stays a placeholder
        return [TRIAL_SPEC_FILE if a == str(spec.absolute()) else a for a in argv]

    assert [t["argv"] for t in launch["trials"]] == [
        shown(child_of(study_dir / "t000", 1, remedy, spec_file=spec).argv),
        shown(child_of(study_dir / "t001", 1, remedy, spec_file=spec).argv),
    ]
    assert all(TRIAL_SPEC_FILE in t["argv"] for t in launch["trials"])
    assert launch["argv"][:4] == [sys.executable, "-P", "-m", "runner"]
    text = describe(p)
    assert "what will run:" in text and "interpreter  " + sys.executable in text
    assert "COMMAND FROM A FILE" not in text
