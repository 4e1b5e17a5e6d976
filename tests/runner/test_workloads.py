"""Built-in and user workloads keep the protocol; the playbook phenomena they are for."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

from runner import spec as specmod
from runner import workloads
from runner.rundir import read_metrics
from runner.train import train

CPU = torch.device("cpu")


@pytest.mark.parametrize("name", sorted(workloads.BUILTIN))
def test_builtin_keeps_the_protocol(name: str) -> None:
    torch.manual_seed(0)
    w = workloads.build(name, batch_size=8, seed=0, device=CPU, options={})
    a = w.train_batch(3, torch.Generator().manual_seed(5))
    b = w.train_batch(3, torch.Generator().manual_seed(5))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # batches follow the generator
    assert a[1].shape[0] == 8
    loss = w.loss_fn(w.model(a[0]), a[1])
    assert loss.dim() == 0 and math.isfinite(float(loss.detach()))
    loss.backward()
    (x1, y1), (x2, y2) = next(iter(w.eval_batches())), next(iter(w.eval_batches()))
    assert torch.equal(x1, x2) and torch.equal(y1, y2)  # the same validation set every call
    assert w.accuracy is not None
    assert 0.0 <= float(w.accuracy(w.model(x1), y1)) <= 1.0


def test_user_workloads_by_file_and_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_work.py").write_text(
        "import torch\n"
        "from torch import nn\n"
        "def make(*, batch_size, scale=1.0, **_):\n"
        "    model = nn.Linear(2, 1)\n"
        "    def train_batch(step, g):\n"
        "        x = torch.randn(batch_size, 2, generator=g)\n"
        "        return x, scale * x.sum(1, keepdim=True)\n"
        "    return {'model': model, 'train_batch': train_batch,\n"
        "            'eval_batches': lambda: [train_batch(0, torch.Generator())],\n"
        "            'loss_fn': nn.functional.mse_loss}\n"
    )
    by_file = workloads.build(
        f"{tmp_path / 'my_work.py'}:make", batch_size=4, seed=0, device=CPU, options={"scale": 2.0}
    )
    assert by_file.accuracy is None
    monkeypatch.syspath_prepend(str(tmp_path))
    by_module = workloads.build("my_work:make", batch_size=4, seed=0, device=CPU, options={})
    assert isinstance(by_module.model, torch.nn.Linear)
    sys.modules.pop("my_work", None)
    spec = specmod.from_dict(
        {"workload": "my_work:make", "max_train_steps": 5, "eval_every": 5, "device": "cpu"}
    )
    assert isinstance(spec, specmod.RunSpec)
    result = train(spec, tmp_path, print_fn=lambda *a: None)
    assert result.status == "finished"
    evals = [r for r in read_metrics(tmp_path) if "val_loss" in r]
    assert evals and "val_accuracy" not in evals[0]  # accuracy only where it means something


@pytest.mark.parametrize(
    "ref", ["nope", "no.such.module:f", "runner.workloads:nope", "/no/such/file.py:f"]
)
def test_bad_workload_refs(ref: str) -> None:
    with pytest.raises(workloads.WorkloadError):
        workloads.resolve(ref)


def final(tmp_path: Path, name: str, **kw: Any) -> tuple[float, float]:
    """(last val_loss, last val_accuracy) of a run of spec `kw`."""
    spec = specmod.from_dict({"device": "cpu", "checkpoint_every": 0, **kw})
    assert isinstance(spec, specmod.RunSpec)
    (tmp_path / name).mkdir()
    train(spec, tmp_path / name, print_fn=lambda *a: None)
    last = [r for r in read_metrics(tmp_path / name) if "val_loss" in r][-1]
    return last["val_loss"], last["val_accuracy"]


def test_digits_mlp_learns(tmp_path: Path) -> None:
    _, acc = final(
        tmp_path,
        "d",
        workload="digits_mlp",
        max_train_steps=150,
        eval_every=150,
        optimizer={"name": "adam", "lr": 0.003},
    )
    assert acc > 0.85


@pytest.mark.slow
def test_tiny_transformer_needs_warmup(tmp_path: Path) -> None:
    # R13 / R18: Adam at lr 0.03 without warmup stalls at chance; 100 warmup steps fix it
    common: dict[str, Any] = {
        "workload": "tiny_transformer",
        "max_train_steps": 600,
        "eval_every": 600,
        "optimizer": {"name": "adam", "lr": 0.03},
    }
    _, cold = final(tmp_path, "cold", **common, schedule={"kind": "cosine"})
    _, warm = final(tmp_path, "warm", **common, schedule={"kind": "cosine", "warmup_steps": 100})
    assert cold < 0.3 and warm > 0.95


@pytest.mark.slow
def test_tiny_resnet_clipping_tames_outliers(tmp_path: Path) -> None:
    # R14 / R23: outlier batches wreck unclipped Adam at lr 0.01; clipping near p90 trains
    common: dict[str, Any] = {
        "workload": "tiny_resnet",
        "max_train_steps": 300,
        "eval_every": 300,
        "optimizer": {"name": "adam", "lr": 0.01},
        "schedule": {"kind": "constant"},
    }
    _, free = final(tmp_path, "free", **common)
    _, clipped = final(tmp_path, "clipped", **common, clip_norm=5.0)
    assert clipped > 0.9 and clipped > free + 0.3
    rows = [r for r in read_metrics(tmp_path / "clipped") if "loss" in r]
    assert sum(r["clipped"] for r in rows) / len(rows) < 0.5  # not too aggressive (R24)
