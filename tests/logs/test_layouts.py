"""Framework layouts that are one run (issue 15), written by the real libraries: a Hugging
Face Trainer's add_hparams subfolder, last-checkpoint/ and model config.json; torch's
add_hparams; Lightning's TensorBoardLogger hparams.yaml with tags the safe loader may not
construct; LFS pointers; which folders are studies."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from conftest_text import tiny_hf_trainer

from tui.logs.discovery import find_runs
from tui.logs.hparams import is_model_config, read_hparams
from tui.logs.model import Run
from tui.logs.studies import is_study
from tui.logs.workspace import Workspace

LFS_POINTER = (
    "version https://git-lfs.github.com/spec/v1\n"
    "oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\n"
    "size 12345\n"
)


def test_hf_trainer_with_tensorboard_and_two_eval_sets(tmp_path: Path) -> None:
    """runs/<date_host>/<timestamp>/ (add_hparams) is part of the output folder's run, its
    hparams merged; the model's config.json is not hyperparameters; eval_<name>_loss are each
    kept and one is the validation loss."""
    trainer = tiny_hf_trainer(tmp_path / "hf_out", report_to=["tensorboard"])
    data = list(trainer.train_dataset)
    trainer.eval_dataset = {"mmlu": data[:4], "gsm8k": data[4:8]}
    trainer.train()
    out = tmp_path / "hf_out"
    assert (out / "checkpoint-12" / "config.json").is_file()
    # transformers 4.x's TensorBoardCallback ended on_train_begin with
    # `tb_writer.add_hparams(args.to_sanitized_dict(), metric_dict={})`; 5.x no longer does:
    # the same call on the same log_dir, with torch's real SummaryWriter
    from torch.utils.tensorboard import SummaryWriter

    (log_dir,) = (out / "runs").iterdir()
    with SummaryWriter(str(log_dir)) as w:
        w.add_hparams(trainer.args.to_sanitized_dict(), metric_dict={})
    hp_dirs = [p for p in log_dir.iterdir() if p.is_dir()]
    assert hp_dirs, "the add_hparams subfolder"
    ws = Workspace([tmp_path])
    ws.refresh()
    assert list(ws.runs) == ["hf_out"]
    assert ws.studies == {}
    run = ws.runs["hf_out"]
    assert run.hparams["lr"] == pytest.approx(1e-3)
    assert run.hparams["batch_size"] == 4
    for model_key in ("vocab_size", "n_embd", "architectures", "bos_token_id"):
        assert model_key not in run.hparams
    assert run.store.count("val_loss") == 3
    assert run.metric_sources["val_loss"] in ("eval/gsm8k_loss", "eval_gsm8k_loss")
    assert run.store.has("eval/mmlu_loss") or run.store.has("eval_mmlu_loss")
    assert run.store.count("loss") == 12
    assert ws.errors == []


def test_last_checkpoint_and_touched_old_checkpoint(tmp_path: Path) -> None:
    """last-checkpoint/ (the hub strategy's copy) is not a second run, and a touched older
    checkpoint does not hide the last steps: the highest global_step is read."""
    out = tmp_path / "hf_out"
    tiny_hf_trainer(out, report_to=[]).train()
    shutil.copytree(out / "checkpoint-12", out / "last-checkpoint")
    shutil.rmtree(out / "checkpoint-12")
    old = out / "checkpoint-8" / "trainer_state.json"
    future = old.stat().st_mtime + 3600
    os.utime(old, (future, future))
    runs = find_runs(tmp_path)
    assert [r.folder for r in runs] == [out]
    states = [f for f in runs[0].files if f.format == "hf_trainer_state"]
    assert [f.path.parent.name for f in states] == ["last-checkpoint"]
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["hf_out"]
    assert run.store.count("loss") == 12
    assert int(run.store.series("loss").steps[-1]) == 12


def test_torch_add_hparams_is_the_runs_hyperparameters(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "run1"))
    for step in range(5):
        w.add_scalar("train/loss", 1.0 / (step + 1), step)
    w.add_hparams({"lr": 0.01, "optimizer": "adam", "dropout": 0.1}, {"hparam/accuracy": 0.9})
    w.close()
    runs = find_runs(tmp_path)
    assert [r.folder.name for r in runs] == ["run1"]
    ws = Workspace([tmp_path])
    ws.refresh()
    run = ws.runs["run1"]
    assert run.hparams == {"lr": 0.01, "optimizer": "adam", "dropout": 0.1}
    assert run.store.count("loss") == 5
    assert run.store.has("hparam/accuracy")
    assert ws.studies == {}


def test_lightning_hparams_yaml_with_python_tags(tmp_path: Path) -> None:
    """Lightning writes a tuple hyperparameter as `!!python/tuple`: the file's other values
    are still read, nothing is constructed."""
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import TensorBoardLogger

    class Tiny(pl.LightningModule):
        def __init__(self, lr: float = 0.05, betas: tuple = (0.9, 0.99)) -> None:
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: list, _: int) -> torch.Tensor:
            loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    data = torch.utils.data.TensorDataset(torch.randn(16, 4), torch.randn(16, 1))
    for lr in (0.05, 0.1):
        logger = TensorBoardLogger(str(tmp_path), name="lightning_logs")
        trainer = pl.Trainer(
            max_steps=4,
            logger=logger,
            log_every_n_steps=1,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
        )
        trainer.fit(Tiny(lr=lr), torch.utils.data.DataLoader(data, batch_size=4))
    yaml_text = (tmp_path / "lightning_logs" / "version_0" / "hparams.yaml").read_text()
    assert "!!python/tuple" in yaml_text
    ws = Workspace([tmp_path])
    ws.refresh()
    assert sorted(ws.runs) == ["lightning_logs/version_0", "lightning_logs/version_1"]
    assert [r.hparams["lr"] for r in ws.studies["lightning_logs"].runs] == [0.05, 0.1]
    assert ws.studies["lightning_logs"].param == "lr"


def test_lfs_pointers_are_reported_as_such(tmp_path: Path) -> None:
    """A clone without `git lfs pull`: the pointers are said to be pointers, and the real
    run beside them is read."""
    hf = tmp_path / "hf_out"
    hf.mkdir()
    (hf / "trainer_state.json").write_text(LFS_POINTER)
    tb = tmp_path / "tb"
    tb.mkdir()
    (tb / "events.out.tfevents.1700000000.host.1.0").write_text(LFS_POINTER)
    good = tmp_path / "good"
    good.mkdir()
    (good / "metrics.jsonl").write_text('{"step": 0, "loss": 1.0}\n')
    ws = Workspace([tmp_path])
    ws.refresh()
    assert list(ws.runs) == ["good"]
    lfs = {Path(p).name: m for p, m in ws.errors}
    assert set(lfs) == {"trainer_state.json", "events.out.tfevents.1700000000.host.1.0"}
    assert all("LFS pointer" in m and "git lfs pull" in m for m in lfs.values())


def test_model_config_is_told_from_a_run_config(tmp_path: Path) -> None:
    from transformers import GPT2Config

    folder = tmp_path / "run"
    folder.mkdir()
    GPT2Config(vocab_size=32, n_embd=16, n_layer=1, n_head=2).to_json_file(
        str(folder / "config.json")
    )
    assert is_model_config(json.loads((folder / "config.json").read_text()))
    assert read_hparams(folder) == {}
    (folder / "config.json").write_text(json.dumps({"learning_rate": 0.1, "batch_size": 8}))
    assert read_hparams(folder) == {"lr": 0.1, "batch_size": 8}


def run_of(tmp_path: Path, name: str, hparams: dict) -> Run:
    return Run(name, tmp_path / name, "jsonl", dict(hparams))


@pytest.mark.parametrize(
    ("names", "configs", "expected"),
    [
        (["t000", "t001", "t002"], [{}, {}, {}], True),
        (["trial_3", "trial_4"], [{}, {}], True),
        (["version_0", "version_2"], [{}, {}], True),
        (["lr=0.1", "lr=0.01"], [{"lr": 0.1}, {"lr": 0.01}], True),
        (["bert-sst2", "gpt2-wiki"], [{}, {}], False),
        # planned lengths alone (trainer_state's max_steps) are no configuration
        (["bert-sst2", "gpt2-wiki"], [{"max_train_steps": 10}, {"max_train_steps": 90}], False),
        (
            ["a", "b"],
            [
                {
                    "lr": 1e-3,
                    "epochs": 3,
                    "model": "bert",
                    "data": "sst2",
                    "bs": 32,
                    "wd": 0.0,
                    "warmup": 100,
                    "dropout": 0.1,
                },
                {
                    "lr": 5e-5,
                    "epochs": 1,
                    "model": "gpt2",
                    "data": "wiki",
                    "bs": 8,
                    "wd": 0.01,
                    "warmup": 0,
                    "dropout": 0.0,
                },
            ],
            False,
        ),
        (
            ["a", "b"],
            [{"lr": 1e-3, "bs": 32, "model": "x"}, {"lr": 1e-2, "bs": 32, "model": "x"}],
            True,
        ),
        # reruns of one configuration: nothing swept, no study; seeds alone: replicates
        (
            ["version_0", "version_1"],
            [{"lr": 1e-3, "hidden": 50}, {"lr": 1e-3, "hidden": 50}],
            False,
        ),
        (["a", "b"], [{"lr": 1e-3, "seed": 0}, {"lr": 1e-3, "seed": 1}], True),
        # the same recipe on different environments / datasets is no search
        (
            ["a", "b"],
            [{"lr": 1e-3, "env_name": "FetchPush"}, {"lr": 1e-3, "env_name": "Slide"}],
            False,
        ),
        (["a", "b"], [{"lr": 1e-3, "dataset": "sst2"}, {"lr": 1e-4, "dataset": "mnli"}], False),
    ],
)
def test_which_folders_are_studies(
    tmp_path: Path, names: list[str], configs: list[dict], expected: bool
) -> None:
    runs = [run_of(tmp_path, n, c) for n, c in zip(names, configs, strict=True)]
    assert is_study(runs) is expected


def test_unrelated_runs_in_one_folder_are_no_study(tmp_path: Path) -> None:
    for name, lr in (("bert-sst2", 1e-5), ("resnet-cifar", 0.1)):
        folder = tmp_path / "outputs" / name
        folder.mkdir(parents=True)
        (folder / "metrics.jsonl").write_text(f'{{"step": 0, "loss": 1.0, "lr": {lr}}}\n')
    ws = Workspace([tmp_path])
    ws.refresh()
    assert len(ws.runs) == 2
    assert ws.studies == {}


def test_restart_into_a_new_event_file_supersedes(tmp_path: Path) -> None:
    """A run resumed from a checkpoint writes a second event file beside the first (torch's
    SummaryWriter on the same log_dir): its steps supersede the first file's from the resume
    step on, as a restart inside one file does, and the restart is marked."""
    from torch.utils.tensorboard import SummaryWriter

    first = SummaryWriter(str(tmp_path / "run"), filename_suffix=".a")
    for step in range(10):
        first.add_scalar("loss", 10.0 + step, step)
    first.close()
    second = SummaryWriter(str(tmp_path / "run"), filename_suffix=".b")
    for step in range(6, 15):
        second.add_scalar("loss", float(step), step)
    second.close()
    assert len(list((tmp_path / "run").glob("events.*"))) == 2
    ws = Workspace([tmp_path])
    ws.refresh()
    s = ws.runs["run"].store.series("loss")
    assert [int(x) for x in s.steps] == list(range(15))
    assert [float(v) for v in s.values[6:]] == [float(x) for x in range(6, 15)]
    assert [(r.step, r.previous_max) for r in ws.runs["run"].store.restarts] == [(6, 9)]


def test_spreadsheet_csv_is_not_a_run(tmp_path: Path) -> None:
    """SYNTHETIC, after a real bookkeeping sheet named progress.csv: a header of mostly empty
    cells is no logger's; the folder says so instead of showing a phantom run."""
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "progress.csv").write_text(",,,seed,adapter,,\n0.6,base,x,10,4,,\n")
    ws = Workspace([tmp_path])
    ws.refresh()
    assert ws.runs == {}
    assert [(Path(p).name, m.split(" (")[0]) for p, m in ws.errors] == [
        ("progress.csv", "not a recognised log")
    ]
