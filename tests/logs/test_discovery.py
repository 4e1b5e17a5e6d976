"""Discovery: run folders, the framework layouts that make one run of many folders,
hyperparameters from files and folder names, studies, symlinks."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tui.config import Config, ConfigError, load_config, parse_config
from tui.logs.discovery import find_runs, log_format
from tui.logs.hparams import from_folder_name, read_hparams
from tui.logs.model import Run
from tui.logs.workspace import Workspace, make_study


def touch(path: Path, text: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def rel_runs(root: Path) -> dict[str, list[str]]:
    return {
        os.path.relpath(r.folder, root): sorted(os.path.relpath(f.path, r.folder) for f in r.files)
        for r in find_runs(root)
    }


def test_log_formats_by_name() -> None:
    assert log_format("events.out.tfevents.1700000000.host.1.0") == "tfevents"
    assert log_format("trainer_state.json") == "hf_trainer_state"
    assert log_format("metrics.jsonl") == "jsonl"
    assert log_format("metrics.csv") == "csv"
    assert log_format("data.csv") is None
    assert log_format("run.json") is None


def test_plain_runs_and_root_as_run(tmp_path: Path) -> None:
    touch(tmp_path / "a" / "metrics.jsonl")
    touch(tmp_path / "b" / "metrics.csv")
    touch(tmp_path / "notes" / "readme.txt")
    assert rel_runs(tmp_path) == {"a": ["metrics.jsonl"], "b": ["metrics.csv"]}
    assert rel_runs(tmp_path / "a") == {".": ["metrics.jsonl"]}


def test_add_scalars_subfolders_belong_to_the_main_run(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "run1"))
    for step in range(3):
        w.add_scalar("grad_norm", 1.0, step)
        w.add_scalars("loss", {"train": 1.0 / (step + 1), "val": 2.0}, step)
    w.close()
    runs = find_runs(tmp_path)
    assert [r.folder.name for r in runs] == ["run1"]
    parts = sorted(f.parts for f in runs[0].files)
    assert parts == [(), ("loss_train",), ("loss_val",)]

    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["run1"]
    assert run.format == "tfevents"
    assert run.store.count("loss") == 3
    assert run.store.count("val_loss") == 3
    assert run.store.count("grad_norm") == 3


def test_tensorboardx_add_scalars_nested_folders(tmp_path: Path) -> None:
    from tensorboardX import SummaryWriter

    w = SummaryWriter(str(tmp_path / "runx"))
    for step in range(4):
        w.add_scalar("lr", 0.1, step)
        w.add_scalars("loss", {"train": 1.0, "val": 2.0}, step)
    w.close()
    runs = find_runs(tmp_path)
    assert [r.folder.name for r in runs] == ["runx"]
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["runx"]
    assert run.store.count("loss") == 4
    assert run.store.count("val_loss") == 4
    assert run.store.count("lr") == 4


def test_keras_train_and_validation_folders_are_one_run(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    # Keras' layout: epoch_loss written into both train/ and validation/
    for split, value in (("train", 1.0), ("validation", 2.0)):
        w = SummaryWriter(str(tmp_path / "keras_run" / split))
        for step in range(5):
            w.add_scalar("epoch_loss", value, step)
            w.add_scalar("epoch_accuracy", 0.5, step)
        w.close()
    ws = Workspace([tmp_path])
    ws.refresh()
    assert list(ws.runs) == ["keras_run"]
    store = ws.runs["keras_run"].store
    assert store.count("loss") == 5
    assert store.count("val_loss") == 5
    assert float(store.series("val_loss").values[0]) == 2.0
    assert set(store.names()) == {"loss", "val_loss", "epoch_accuracy", "val_epoch_accuracy"}


def test_hf_output_folder_is_one_run_with_the_newest_state(tmp_path: Path) -> None:
    out = tmp_path / "hf_out"
    for n in (2, 4):
        touch(
            out / f"checkpoint-{n}" / "trainer_state.json",
            json.dumps(
                {"max_steps": 4, "log_history": [{"step": s, "loss": 1.0} for s in range(1, n + 1)]}
            ),
        )
    os.utime(out / "checkpoint-2" / "trainer_state.json", (1, 1))
    touch(out / "runs" / "Nov24_10-30-00_host" / "events.out.tfevents.1.host.1.0")
    runs = find_runs(tmp_path)
    assert len(runs) == 1 and runs[0].folder == out
    names = sorted(os.path.relpath(f.path, out) for f in runs[0].files)
    assert names == [
        "checkpoint-4/trainer_state.json",
        "runs/Nov24_10-30-00_host/events.out.tfevents.1.host.1.0",
    ]
    assert runs[0].format == "hf_trainer_state"


def test_symlinks_out_of_the_root_are_not_followed_and_loops_end(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    touch(outside / "secret_run" / "metrics.jsonl")
    root = tmp_path / "root"
    touch(root / "a" / "metrics.jsonl")
    os.symlink(outside, root / "escape")
    os.symlink(root, root / "a" / "loop")
    os.symlink(root / "a", root / "inside_link")
    found = rel_runs(root)
    assert "escape/secret_run" not in found
    assert "a" in found
    assert len(found) == 1  # inside_link is the same folder as a: read once


def test_unreadable_folder_is_an_error_not_a_crash(tmp_path: Path) -> None:
    touch(tmp_path / "ok" / "metrics.jsonl")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").mkdir()  # a "log" that is a folder cannot be read as a file
    errors: list[tuple[str, str]] = []
    runs = find_runs(tmp_path, errors)
    assert [r.folder.name for r in runs] == ["ok"]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("lr=0.001", {"lr": 0.001}),
        ("lr=0.001,bs=64", {"lr": 0.001, "batch_size": 64}),
        ("lr_0.001", {"lr": 0.001}),
        ("bs-64", {"batch_size": 64}),
        ("lr_1e-3_wd_0.1_seed-2", {"lr": 0.001, "weight_decay": 0.1, "seed": 2}),
        ("warmup-100", {"warmup_steps": 100}),
        ("loss_train", {}),
        ("version_0", {}),
        ("Nov24_10-30-00_host", {}),
        ("trial_3", {}),
        ("t000", {}),
    ],
)
def test_hparams_from_folder_names(name: str, expected: dict) -> None:
    assert from_folder_name(name) == expected


def test_hparams_merge_order_and_identifiers(tmp_path: Path) -> None:
    folder = tmp_path / "lr=0.5,bs=8"
    touch(
        folder / "config.json",
        json.dumps(
            {
                "learning_rate": 0.2,
                "batch_size": 16,
                "output_dir": "/x/y",
                "run_name": "abc",
                "model": {"layers": 2},
                "started": "2026-11-24 10:00:00",
                "dropout": 0.1,
            }
        ),
    )
    touch(folder / "hparams.yaml", "momentum: 0.9\nlr: 0.3\n")
    run_json = {"hparams": {"optimizer.lr": 0.1, "max_train_steps": 100}, "total_steps": 100}
    hp = read_hparams(folder, run_json, None)
    assert hp["lr"] == 0.1  # run.json first; later sources never override
    assert hp["batch_size"] == 16
    assert hp["momentum"] == 0.9
    assert hp["dropout"] == 0.1
    assert hp["max_train_steps"] == 100
    for ident in ("output_dir", "run_name", "started", "model"):
        assert ident not in hp


def test_yaml_is_loaded_safely(tmp_path: Path) -> None:
    """A tag the safe loader may not construct executes nothing and costs only its value:
    the file's plain scalars are kept (issue 15: one !!python/object lost a whole study)."""
    canary = tmp_path / "CANARY"
    touch(
        tmp_path / "r" / "hparams.yaml",
        f"lr: !!python/object/apply:os.system ['touch {canary}']\n"
        "dropout: 0.1\n"
        "opt: !!python/object:argparse.Namespace {lr: 3}\n"
        "learning_rate: 0.02\n",
    )
    errors: list[tuple[str, str]] = []
    hp = read_hparams(tmp_path / "r", None, None, errors)
    assert not canary.exists()
    assert hp == {"dropout": 0.1, "lr": 0.02}
    assert errors == []


def test_study_swept_values_and_order(tmp_path: Path) -> None:
    runs = [
        Run(f"s/lr={lr}", tmp_path / f"lr={lr}", "jsonl", {"lr": lr, "batch_size": 32})
        for lr in (0.1, 0.001, 0.01)
    ]
    study = make_study("s", tmp_path, runs)
    assert study.param == "lr"
    assert [r.hparams["lr"] for r in study.runs] == [0.001, 0.01, 0.1]
    assert study.swept == {"lr": [0.001, 0.01, 0.1]}
    seeds = [Run(f"s/{i}", tmp_path / str(i), "jsonl", {"seed": i}) for i in range(3)]
    assert make_study("s", tmp_path, seeds).is_replicate


def test_workspace_groups_studies_from_folder_names(tmp_path: Path) -> None:
    for lr in ("0.001", "0.01", "0.1"):
        touch(tmp_path / "sweep" / f"lr={lr}" / "metrics.jsonl", '{"step": 0, "loss": 1}\n')
    touch(tmp_path / "single" / "metrics.jsonl", '{"step": 0, "loss": 1}\n')
    ws = Workspace([tmp_path])
    ws.refresh()
    assert set(ws.studies) == {"sweep"}
    assert ws.studies["sweep"].param == "lr"


def test_config_layers_and_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    touch(tmp_path / "xdg" / "tunetop" / "tunetop.toml", "readonly = true\n[watch]\npoll = 5\n")
    touch(tmp_path / "root" / "tunetop.toml", '[aliases]\nloss = ["my_loss"]\n[watch]\npoll = 1\n')
    touch(
        tmp_path / "root" / "run" / "tunetop.toml",
        '[launch]\ncommand = ["python", "train.py", "--lr", "{lr}"]\n',
    )
    cfg = load_config(tmp_path / "root", tmp_path / "root" / "run")
    assert cfg.readonly is True
    assert cfg.poll == 1.0  # the nearer wins
    assert cfg.aliases == {"loss": ("my_loss",)}
    assert cfg.launch_command == ("python", "train.py", "--lr", "{lr}")
    touch(tmp_path / "broken" / "tunetop.toml", "readonly = [\n")
    cfg = load_config(tmp_path / "broken")
    assert cfg.problems and cfg.readonly is True  # user layer still applies
    with pytest.raises(ConfigError, match=r"watch\.pol"):
        parse_config({"watch": {"pol": 1}})
    assert Config().poll == 0.0


def test_user_aliases_map_metrics(tmp_path: Path) -> None:
    touch(tmp_path / "r" / "metrics.jsonl", '{"step": 0, "my_loss": 3.0}\n')
    ws = Workspace([tmp_path], Config(aliases={"loss": ("my_loss",)}))
    ws.refresh()
    assert ws.runs["r"].store.count("loss") == 1


def test_folder_without_read_permission_is_an_error_and_the_rest_is_read(
    tmp_path: Path,
) -> None:
    """Tests run as root, who reads everything: the walk runs as `nobody` in a forked child."""
    from conftest_text import run_unprivileged

    import tui.logs.jsonl  # noqa: F401 - imported here: `nobody` may not read the checkout

    touch(tmp_path / "ok" / "metrics.jsonl", '{"step": 0, "loss": 1.0}\n')
    touch(tmp_path / "locked" / "metrics.jsonl", '{"step": 0, "loss": 1.0}\n')
    os.chmod(tmp_path, 0o755)
    os.chmod(tmp_path / "ok", 0o755)
    os.chmod(tmp_path / "ok" / "metrics.jsonl", 0o644)
    os.chmod(tmp_path / "locked", 0o000)
    for parent in tmp_path.parents:  # let nobody reach tmp_path
        if str(parent).startswith("/tmp/"):
            os.chmod(parent, 0o755)

    def walk() -> dict:
        ws = Workspace([tmp_path])
        ws.refresh()
        return {
            "runs": sorted(ws.runs),
            "errors": ws.errors,
            "points": ws.runs["ok"].store.count("loss") if "ok" in ws.runs else 0,
        }

    try:
        got = run_unprivileged(walk)
    finally:
        os.chmod(tmp_path / "locked", 0o755)
    assert got["runs"] == ["ok"], got
    assert got["points"] == 1, got
    assert any("locked" in p and "ermission" in m for p, m in got["errors"])
