"""The trust check (issue 14 item 1, tui/trust.py) and what it keeps from deciding what runs:
tunetop.toml layers, run.json commands and workloads, a study's baseline, warmup-apply's
baseline, `--out`, options from folder names, and `plan --launch` with a planted command.

Real files with real owners and modes: the tests run as root, and `os.chown(path, 1001, 1001)`
plants a file as another user would have written it."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_plan import diverging, healthy, write_run

from runner import spec as rspec
from tui import trust
from tui.config import ConfigError, load_config, parse_config
from tui.remedy.plan import option_like, plan
from tui.remedy.preview import FROM_TREE, preview

STRANGER = 1001

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown to another uid needs root")


@pytest.fixture(autouse=True)
def own_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's config folder, outside every watched root of the test."""
    folder = tmp_path / "xdg"
    (folder / "tunetop").mkdir(parents=True)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(folder))
    return folder / "tunetop"


def planted(path: Path, mode: int = 0o664) -> Path:
    """`path` as the stranger left it: owned by uid 1001, group-writable by default."""
    os.chown(path, STRANGER, STRANGER)
    os.chmod(path, mode)
    return path


def command_run(folder: Path, command: list[str], lr: float = 0.5) -> Path:
    """A runner-made run whose run.json holds `spec.command` (an external script)."""
    write_run(folder, diverging(), lr, 2000)
    spec = rspec.RunSpec(workload=None, command=command, max_train_steps=2000)
    spec.optimizer.lr = lr
    record = json.loads((folder / "run.json").read_text())
    record["spec"] = rspec.to_dict(spec)
    (folder / "run.json").write_text(json.dumps(record))
    return folder


# -- the check itself -------------------------------------------------------------------------


def test_own_file_in_a_private_tree_is_trusted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run = write_run(root / "run", healthy(), 0.1, 100)
    v = trust.check(run / "run.json", trust.Policy(root))
    assert v.trusted, v.why
    assert "yours" in v.why


def test_a_strangers_group_writable_file_is_not_trusted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run = write_run(root / "run", healthy(), 0.1, 100)
    planted(run / "run.json")
    v = trust.check(run / "run.json", trust.Policy(root))
    assert not v.trusted
    assert v.says("command").startswith(
        "run/run.json is owned by uid 1001 and group-writable: its command is not trusted; "
        "to trust it: add"
    )
    assert "[trust] roots" in v.how and "--trust" in v.how
    planted(run / "run.json", 0o644)
    assert trust.check(run / "run.json", trust.Policy(root)).why.endswith("owned by uid 1001")


def test_own_file_made_group_or_world_writable_is_not_trusted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    f = write_run(root / "run", healthy(), 0.1, 100) / "run.json"
    os.chmod(f, 0o620)
    assert trust.check(f, trust.Policy(root)).why.endswith("is group-writable")
    os.chmod(f, 0o602)
    assert trust.check(f, trust.Policy(root)).why.endswith("is writable by others")


@pytest.mark.parametrize("mode", [0o775, 0o757, 0o1777], ids=["0775", "0757", "1777"])
def test_a_writable_folder_up_to_the_root_is_not_trusted(tmp_path: Path, mode: int) -> None:
    """Whoever can write a folder on the way can swap what is below it (sticky bit or not)."""
    root = tmp_path / "root"
    f = write_run(root / "study" / "t000", healthy(), 0.1, 100) / "run.json"
    for folder in (root / "study", root):
        os.chmod(folder, mode)
        v = trust.check(f, trust.Policy(root))
        assert not v.trusted and f"folder {folder} (above study/t000/run.json)" in v.why, v.why
        os.chmod(folder, 0o755)
    os.chown(root / "study", STRANGER, STRANGER)
    assert "owned by uid 1001" in trust.check(f, trust.Policy(root)).why
    os.chown(root / "study", 0, 0)
    assert trust.check(f, trust.Policy(root)).trusted


def test_folders_above_the_root_do_not_count(tmp_path: Path) -> None:
    shared = tmp_path / "shared"  # like /tmp: 1777, above the watched root
    root = shared / "mine"
    f = write_run(root / "run", healthy(), 0.1, 100) / "run.json"
    os.chmod(shared, 0o1777)
    assert trust.check(f, trust.Policy(root)).trusted


def test_links_and_files_outside_the_root_are_not_trusted(tmp_path: Path) -> None:
    root = tmp_path / "root"
    real = write_run(tmp_path / "elsewhere" / "run", healthy(), 0.1, 100)
    (root / "run").mkdir(parents=True)
    (root / "run" / "run.json").symlink_to(real / "run.json")
    assert "symbolic link" in trust.check(root / "run" / "run.json", trust.Policy(root)).why
    (root / "linked").symlink_to(real)
    v = trust.check(root / "linked" / "run.json", trust.Policy(root))
    assert not v.trusted and "is a symbolic link" in v.why
    v = trust.check(real / "run.json", trust.Policy(root))
    assert not v.trusted and "outside the watched root" in v.why
    v = trust.check(root / ".." / "elsewhere" / "run" / "run.json", trust.Policy(root))
    assert not v.trusted and "outside the watched root" in v.why


def test_allowlist_flag_and_config_folder_trust(tmp_path: Path, own_config: Path) -> None:
    root = tmp_path / "root"
    f = planted(write_run(root / "run", healthy(), 0.1, 100) / "run.json")
    assert not trust.check(f, trust.Policy(root)).trusted
    assert trust.check(f, trust.Policy(root, allow=(str(root),))).trusted
    assert not trust.check(f, trust.Policy(root, allow=(str(tmp_path / "other"),))).trusted
    assert "--trust" in trust.check(f, trust.Policy(root, forced=True)).why
    (own_config / "tunetop.toml").write_text("")
    v = trust.check(own_config / "tunetop.toml", trust.Policy(root))
    assert v.trusted and "your config folder" in v.why


# -- tunetop.toml layers ----------------------------------------------------------------------

PLANT = (
    'readonly = false\n[aliases]\nloss = ["their_loss"]\n[watch]\npoll = 0.001\n'
    '[launch]\ncommand = ["sh", "-c", "touch /tmp/pwned"]\n[trust]\nroots = ["/"]\n'
)


@pytest.mark.parametrize("where", ["root", "run"])
def test_a_planted_tunetop_toml_only_adds_aliases(
    tmp_path: Path, own_config: Path, where: str
) -> None:
    (own_config / "tunetop.toml").write_text(
        'readonly = true\n[launch]\ncommand = ["python", "train.py", "--lr", "{lr}"]\n'
    )
    root = tmp_path / "root"
    run = write_run(root / "run", healthy(), 0.1, 100)
    toml = (root if where == "root" else run) / "tunetop.toml"
    toml.write_text(PLANT)
    planted(toml)
    cfg = load_config(root, run)
    assert cfg.readonly is True  # readonly = false from the tree: ignored
    assert cfg.launch_command == ("python", "train.py", "--lr", "{lr}")  # the user's own
    assert cfg.launch_source == str(own_config / "tunetop.toml") and not cfg.launch_in_tree
    assert cfg.poll == 0.0
    assert cfg.trust_roots == ()
    assert cfg.aliases == {"loss": ("their_loss",)}  # aliases may be added
    assert cfg.launch_refused and "owned by uid 1001 and group-writable" in cfg.launch_refused
    assert any("readonly = false" in p and "[launch] command" in p for p in cfg.problems)
    assert any("[trust] is read only from your own" in p for p in cfg.problems)


def test_a_trusted_tree_file_may_set_the_launch_command(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run = write_run(root / "run", healthy(), 0.1, 100, runner=False)
    (run / "tunetop.toml").write_text('readonly = true\n[launch]\ncommand = ["x", "{run_dir}"]\n')
    cfg = load_config(root, run)
    assert cfg.launch_command == ("x", "{run_dir}") and cfg.launch_in_tree
    assert cfg.readonly is True


def test_a_tree_file_may_only_tighten_readonly(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "tunetop.toml").write_text("readonly = true\n")
    planted(root / "tunetop.toml")
    assert load_config(root).readonly is True


def test_a_tunetop_toml_linked_out_of_the_root_is_not_followed(
    tmp_path: Path, own_config: Path
) -> None:
    private = tmp_path / "private.toml"
    private.write_text('[launch]\ncommand = ["secret", "--token=abc"]\n')
    root = tmp_path / "root"
    root.mkdir()
    (root / "tunetop.toml").symlink_to(private)
    cfg = load_config(root)
    assert cfg.launch_command is None
    assert any("symbolic link" in p for p in cfg.problems)
    # the user's own file may be a link they made
    (own_config / "tunetop.toml").symlink_to(private)
    assert load_config(root).launch_command == ("secret", "--token=abc")


def test_a_fifo_tunetop_toml_does_not_hang(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    os.mkfifo(root / "tunetop.toml")
    cfg = load_config(root)  # returns at once: O_NONBLOCK, then refused as a FIFO
    assert any("FIFO" in p for p in cfg.problems)


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "1e9", "-1", "true", '"2"'])
def test_watch_poll_must_be_finite_and_bounded(tmp_path: Path, value: str) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "tunetop.toml").write_text(f"[watch]\npoll = {value}\n")
    cfg = load_config(root)
    assert cfg.poll == 0.0
    assert any("watch.poll must be a number of seconds from 0 to 3600" in p for p in cfg.problems)
    with pytest.raises(ConfigError, match="stalled_after"):
        parse_config({"watch": {"stalled_after": math.inf}})
    assert parse_config({"watch": {"poll": 2, "stalled_after": 30}}) == {
        "poll": 2.0,
        "stalled_after": 30.0,
    }


def test_slurm_and_trust_sections_are_typed(own_config: Path) -> None:
    ok = parse_config(
        {
            "slurm": {"partition": "gpu", "gpus_per_trial": 1, "extra": ["--qos=low"]},
            "trust": {"roots": ["/data/team"]},
        }
    )
    assert ok["slurm"]["gpus_per_trial"] == 1 and ok["trust_roots"] == ("/data/team",)
    for bad, match in (
        ({"slurm": {"gpus_per_trial": "1"}}, "slurm.gpus_per_trial"),
        ({"slurm": {"gpus_per_trial": True}}, "slurm.gpus_per_trial"),
        ({"slurm": {"extra": "--x"}}, "slurm.extra"),
        ({"slurm": {"nodes": 2}}, "slurm.nodes"),
        ({"trust": {"roots": ["relative/path"]}}, "absolute"),
        ({"trust": {"roots": "/x"}}, "trust.roots"),
    ):
        with pytest.raises(ConfigError, match=match):
            parse_config(bad)
    (own_config / "tunetop.toml").write_text('[trust]\nroots = ["/data/team"]\n')
    assert load_config().trust_roots == ("/data/team",)


# -- plans --------------------------------------------------------------------------------------


def test_an_untrusted_spec_command_is_computed_shown_and_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run = command_run(root / "run", ["python", "train.py", "--lr", "{lr}", "--out", "{run_dir}"])
    planted(run / "run.json")
    p = plan("warmup", run)
    assert not p.launchable
    assert p.computed["base_lr"] == 5.0  # everything else is still computed
    (line,) = p.refusals
    assert line.startswith(
        "run/run.json is owned by uid 1001 and group-writable: its spec.command is not trusted"
    )
    assert line in p.missing and "[trust] roots" in line and "--trust" in line
    shown = preview(p)
    assert shown is not None and shown.from_tree
    text = "\n".join(shown.lines())
    assert f"{FROM_TREE}: {run / 'run.json'}" in text
    # what runs: a bare `python` is tunetop's own interpreter (runner/child.py command_argv)
    assert shown.trials[0].command == [
        sys.executable,
        "train.py",
        "--lr",
        "5.0",
        "--out",
        shown.trials[0].argv[5],
    ]
    # the same plan is launchable once trusted: by --trust (and it says so), or the allowlist
    forced = plan("warmup", run, trust_files=True)
    assert forced.launchable, forced.missing
    assert any(n.startswith("--trust:") for n in forced.notes)


def test_the_allowlist_trusts_a_shared_root(tmp_path: Path, own_config: Path) -> None:
    root = tmp_path / "root"
    run = planted(command_run(root / "run", ["python", "train.py"]) / "run.json").parent
    (own_config / "tunetop.toml").write_text(f'[trust]\nroots = ["{root}"]\n')
    p = plan("warmup", run)
    assert p.launchable, p.missing


@pytest.mark.parametrize(
    ("workload", "trusted"),
    [("digits_mlp", True), ("os:system", False), ("evil.py:main", False)],
)
def test_only_a_built_in_workload_is_safe_from_an_untrusted_run_json(
    tmp_path: Path, workload: str, trusted: bool
) -> None:
    run = write_run(tmp_path / "root" / "run", diverging(), 0.5, 2000)
    record = json.loads((run / "run.json").read_text())
    record["spec"]["workload"] = workload
    (run / "run.json").write_text(json.dumps(record))
    planted(run / "run.json")
    p = plan("warmup", run)
    assert p.launchable is trusted, p.missing
    if not trusted:
        assert "its spec.workload is not trusted" in p.refusals[0]


def test_a_planted_trial_never_becomes_the_baseline_of_a_study(tmp_path: Path) -> None:
    study = tmp_path / "root" / "sweep"
    write_run(study / "lr=0.01", healthy(), 0.01, 1500)
    write_run(study / "lr=1.0", diverging(), 1.0, 1500)
    bad = command_run(study / "lr=0.5", ["sh", "-c", "touch /tmp/pwned"])
    planted(bad / "run.json")
    p = plan("warmup", study)
    assert p.launchable, p.missing
    assert p.remedy["baseline"].endswith("lr=1.0")
    assert p.computed["unstable_lr"] == 1.0
    assert any(
        n.startswith("not a baseline: sweep/lr=0.5/run.json is owned by uid 1001") for n in p.notes
    )
    # with the only unstable trial planted, nothing is launched and the plan says why
    planted(study / "lr=1.0" / "run.json")
    p = plan("warmup", study)
    assert not p.launchable and p.refusals and "a trusted baseline" in p.refusals[0]


def test_warmup_apply_follows_the_baseline_only_inside_the_root(tmp_path: Path) -> None:
    outside = write_run(tmp_path / "outside" / "base", diverging(), 0.1, 10_000)
    root = tmp_path / "root"
    remedy = {"kind": "warmup", "source": str(outside), "baseline": str(outside)}
    study = root / "warmup-20261125-000000"
    write_run(study / "t000", healthy(), 1.0, 0, remedy=remedy, warmup=10)
    write_run(study / "t001", healthy(), 1.0, 0, remedy=remedy, warmup=100)
    p = plan("warmup-apply", study)
    assert any("outside the watched root" in m for m in p.missing), p.missing
    # a link inside the root that leads out is not followed either
    (root / "base").symlink_to(outside)
    linked = {"kind": "warmup", "source": str(root / "base"), "baseline": str(root / "base")}
    for t in ("t000", "t001"):
        record = json.loads((study / t / "run.json").read_text())
        record["remedy"] = linked
        (study / t / "run.json").write_text(json.dumps(record))
    p = plan("warmup-apply", study)
    assert any("outside the watched root" in m for m in p.missing), p.missing
    # trials that are not trusted never name the baseline
    inside = write_run(root / "mine", diverging(), 0.1, 10_000)
    for t in ("t000", "t001"):
        record = json.loads((study / t / "run.json").read_text())
        record["remedy"] = {"kind": "warmup", "source": str(inside), "baseline": str(inside)}
        (study / t / "run.json").write_text(json.dumps(record))
    assert plan("warmup-apply", study).launchable
    for t in ("t000", "t001"):
        planted(study / t / "run.json")
    p = plan("warmup-apply", study)
    assert not p.launchable and any("a trusted baseline" in r for r in p.refusals)


def test_default_out_does_not_follow_a_linked_target_out_of_the_tree(tmp_path: Path) -> None:
    elsewhere = write_run(tmp_path / "elsewhere" / "run", diverging(), 0.5, 2000)
    root = tmp_path / "root"
    root.mkdir()
    (root / "link").symlink_to(elsewhere)
    p = plan("warmup", root / "link")
    assert Path(p.out) == root


def test_a_folder_named_like_an_option_never_becomes_one(tmp_path: Path) -> None:
    root = tmp_path / "root"
    run = write_run(root / "--exec=evil", diverging(), 0.3, 5000, runner=False)
    (root / "tunetop.toml").write_text('[launch]\ncommand = ["train", "{name}", "{run_dir}"]\n')
    p = plan("warmup", run)
    assert p.launchable, p.missing
    shown = preview(p)
    assert shown is not None
    for t in shown.trials:
        assert t.command is not None and not any(a.startswith("-") for a in t.command)
    # a value that would be read as an option refuses the plan
    assert option_like(["train", "{name}"], ["train", "--exec=evil"])
    assert option_like(["train", "--offset", "{x}"], ["train", "--offset", "-1"]) is None
    assert option_like(["train", "--out={run_dir}"], ["train", "--out=/x"]) is None
    # --out given as a folder named like an option reaches the runner as an absolute path
    p = plan("warmup", run, out="--x")
    assert os.path.isabs(p.out) and p.out.endswith("/--x")


# -- launching --------------------------------------------------------------------------------


def _plan_launch(target: Path, env: dict[str, str], *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tui", "plan", "warmup", str(target), "--launch", *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def _launch_env(tmp_path: Path) -> dict[str, str]:
    return dict(
        os.environ,
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        XDG_STATE_HOME=str(tmp_path / "state"),
        TUNETOP_STOP_GRACE="1",
    )


def _canary_run(tmp_path: Path) -> tuple[Path, Path]:
    """A stranger's run.json whose spec.command writes a canary file. The root's name holds an
    OSC title and a screen clear: every path printed must come out sanitised."""
    canary = tmp_path / "canary"
    root = tmp_path / "root\x1b]0;pwned\x07\x1b[2J"
    code = f"open({str(canary)!r}, 'w').write('ran')"
    run = command_run(root / "run", [sys.executable, "-c", code])
    planted(run / "run.json")
    return run, canary


def test_plan_launch_never_runs_a_planted_command(tmp_path: Path) -> None:
    """`plan --launch` on it refuses (exit 1), starts nothing, writes no canary."""
    run, canary = _canary_run(tmp_path)
    refused = _plan_launch(run, _launch_env(tmp_path))
    assert refused.returncode == 1, refused.stderr
    assert "its spec.command is not trusted" in refused.stdout
    assert FROM_TREE in refused.stdout
    assert "launched" not in refused.stderr
    assert "\x1b" not in refused.stdout + refused.stderr
    assert not (tmp_path / "state").exists()  # no job, no spec written
    assert sorted(p.name for p in run.parent.iterdir()) == ["run"]  # no study folder
    assert not canary.exists()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_plan_launch_with_trust_runs_that_command(tmp_path: Path) -> None:
    """The positive control of the test above: trusted for this plan, the same command really
    runs (so the refusal is what kept the canary away), and the paths print sanitised."""
    run, canary = _canary_run(tmp_path)
    ran = _plan_launch(run, _launch_env(tmp_path), "--trust")
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "launched warmup study" in ran.stderr and "\\x1b]0;pwned" in ran.stderr
    assert "\x1b" not in ran.stderr + ran.stdout
    deadline = time.monotonic() + 180
    while not canary.exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # polling with a deadline: the canary is written by a grandchild
    assert canary.read_text() == "ran"
    # let the study end before the tmp folder goes (it runs in its own session)
    (study,) = [p for p in run.parent.iterdir() if p.name.startswith("warmup-")]
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        record = json.loads((study / "study.json").read_text())
        if record["status"] != "running":
            break
        time.sleep(0.2)
    assert record["status"] == "finished", record


def test_a_run_json_linked_out_of_the_root_is_no_relaunch_source(tmp_path: Path) -> None:
    """A private spec (with a token) linked into the shared tree is never copied into a plan."""
    private = write_run(tmp_path / "private" / "run", diverging(), 0.5, 2000)
    record = json.loads((private / "run.json").read_text())
    record["spec"]["workload_options"] = {"token": "s3cret"}
    (private / "run.json").write_text(json.dumps(record))
    root = tmp_path / "root"
    run = root / "run"
    run.mkdir(parents=True)
    (run / "metrics.jsonl").write_text((private / "metrics.jsonl").read_text())
    (run / "run.json").symlink_to(private / "run.json")
    p = plan("warmup", run)
    assert not p.launchable
    assert "s3cret" not in json.dumps(p.to_json())


def test_a_planted_launch_template_is_shown_and_refused(tmp_path: Path, own_config: Path) -> None:
    root = tmp_path / "root"
    run = write_run(root / "run", diverging(), 0.3, 5000, runner=False)
    (root / "tunetop.toml").write_text('[launch]\ncommand = ["sh", "-c", "echo {lr}"]\n')
    planted(root / "tunetop.toml")
    p = plan("warmup", run)
    assert not p.launchable
    assert p.refusals and "[launch] command is not trusted" in p.refusals[0]
    shown = preview(p)
    assert shown is not None and shown.from_tree
    assert shown.trials[0].command == ["sh", "-c", "echo 3.0"]
    # the user's own template wins over a planted one, and the plan says what it ignored
    (own_config / "tunetop.toml").write_text('[launch]\ncommand = ["mine", "{lr}"]\n')
    p = plan("warmup", run)
    assert p.launchable, p.missing
    shown = preview(p)
    assert shown is not None and not shown.from_tree
    assert shown.trials[0].command == ["mine", "3.0"]
    assert any("(yours is used)" in n for n in p.notes)
