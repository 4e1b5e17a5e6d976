"""Generate tunetop's labelled evaluation set for the diagnosis detectors from REAL training.

Plain PyTorch on CPU, a few seconds per run. Every run is trained for real; only the events are
scripted and their steps recorded (the labels):

- ``spike``: healthy training with induced spikes at recorded steps: the learning rate
  multiplied 30-100x for one step, or one corrupted batch (inputs scaled up and labels
  shuffled). Labels: ``spikes`` (the induced steps). R13.
- ``clean``: healthy runs that must raise no warning: small-batch noise, a fast early drop,
  step-decay and cosine schedules, a short warmup.
- ``unstable``: the learning rate grows exponentially after a while, so the loss declines and
  then creeps up (R12: "loss going up during training instead of down").
- ``sweep``: learning-rate (and one dropout) sweeps, trials with a validation loss every 20
  steps; ``expect`` says how the study must be classified: ``interior``, ``edge_low``,
  ``edge_high`` (R5) or ``feasibility_edge`` (R16).

Usage: ``python tests/diagnose/evalset/generate.py [--seed S] [--out FILE]``. The committed
file (evalset.jsonl.gz) is ``--seed 0``; the benchmark can generate held-out sets with other
seeds (different data order, initialisation and spike steps) to check that nothing was tuned
to the committed one.
"""

from __future__ import annotations

import argparse
import gzip
import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "evalset.jsonl.gz"

torch.set_num_threads(1)
torch.set_flush_denormal(True)  # denormals make tiny-model CPU training crawl


# -- workloads -------------------------------------------------------------------------------
class Task:
    """A dataset plus a model factory; `batch(bs, rng)` draws a training minibatch."""

    def __init__(
        self,
        name: str,
        x: torch.Tensor,
        y: torch.Tensor,
        xv: torch.Tensor,
        yv: torch.Tensor,
        make_model: Callable[[float], nn.Module],
        loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        corrupt: Callable[[torch.Tensor, torch.Tensor, np.random.Generator], tuple],
    ) -> None:
        self.name, self.x, self.y, self.xv, self.yv = name, x, y, xv, yv
        self.make_model, self.loss_fn, self.corrupt = make_model, loss_fn, corrupt

    def batch(self, bs: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        idx = torch.from_numpy(rng.integers(0, self.x.shape[0], bs))
        return self.x[idx], self.y[idx]


def digits_task(seed: int) -> Task:
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.data - d.data.mean(0)) / (d.data.std(0) + 1e-6)
    rng = np.random.default_rng(1000 + seed)
    perm = rng.permutation(len(x))
    x, y = x[perm], d.target[perm]
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.long)

    def make(dropout: float = 0.0) -> nn.Module:
        return nn.Sequential(
            nn.Linear(64, 128), nn.ReLU(), nn.Dropout(dropout), nn.Linear(128, 64), nn.ReLU(),
            nn.Dropout(dropout), nn.Linear(64, 10),
        )

    def corrupt(xb: torch.Tensor, yb: torch.Tensor, r: np.random.Generator) -> tuple:
        return xb * 12.0, yb[torch.from_numpy(r.permutation(len(yb)))]

    return Task("digits_mlp", xt[:1400], yt[:1400], xt[1400:], yt[1400:], make,
                nn.functional.cross_entropy, corrupt)


def regression_task(seed: int) -> Task:
    rng = np.random.default_rng(2000 + seed)
    n = 3000
    x = rng.normal(size=(n, 10))
    w = rng.normal(size=10)
    y = np.sin(x @ w / 2) + 0.3 * (x[:, 0] * x[:, 1]) + 0.1 * rng.normal(size=n)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)[:, None]

    def make(dropout: float = 0.0) -> nn.Module:
        return nn.Sequential(nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                             nn.Linear(64, 1))

    def corrupt(xb: torch.Tensor, yb: torch.Tensor, r: np.random.Generator) -> tuple:
        return xb * 10.0, -yb * 10.0

    return Task("regression_mlp", xt[:2500], yt[:2500], xt[2500:], yt[2500:], make,
                nn.functional.mse_loss, corrupt)


class TinyLM(nn.Module):
    def __init__(self, vocab: int, d: int = 32, seq: int = 24, layers: int = 1) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True,
                                           norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.emb(tokens) + self.pos[: tokens.shape[1]]
        return self.out(self.enc(h, mask=self.mask[: tokens.shape[1], : tokens.shape[1]],
                                 is_causal=True))


def lm_task(seed: int) -> Task:
    """Next-token prediction on a random sparse Markov chain (each token has 3 successors)."""
    vocab, seq = 32, 24
    rng = np.random.default_rng(3000 + seed)
    succ = rng.integers(0, vocab, size=(vocab, 3))
    probs = np.array([0.6, 0.3, 0.1])

    def sample(n: int) -> np.ndarray:
        out = np.empty((n, seq + 1), np.int64)
        out[:, 0] = rng.integers(0, vocab, n)
        for t in range(seq):
            choice = rng.choice(3, size=n, p=probs)
            out[:, t + 1] = succ[out[:, t], choice]
        return out

    data = torch.from_numpy(sample(4000))
    x, y = data[:, :-1], data[:, 1:]

    def make(dropout: float = 0.0) -> nn.Module:
        return TinyLM(vocab, seq=seq)

    def loss_fn(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return nn.functional.cross_entropy(logits.reshape(-1, vocab), target.reshape(-1))

    def corrupt(xb: torch.Tensor, yb: torch.Tensor, r: np.random.Generator) -> tuple:
        return xb, torch.from_numpy(r.integers(0, vocab, size=tuple(yb.shape)))

    return Task("tiny_transformer", x[:3500], y[:3500], x[3500:], y[3500:], make, loss_fn,
                corrupt)


# -- one training run ------------------------------------------------------------------------
def train(
    task: Task,
    *,
    steps: int,
    bs: int,
    lr: float,
    opt: str = "adam",
    seed: int = 0,
    schedule: Callable[[int], float] = lambda s: 1.0,
    lr_spikes: dict[int, float] | None = None,
    bad_batches: tuple[int, ...] = (),
    eval_every: int = 0,
    log_every: int = 1,
    dropout: float = 0.0,
) -> dict[str, list[float | int]]:
    """Train for real; return the logged columns. The loss logged at step s is the loss of
    step s's batch before its update (what training loops print)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = task.make_model(dropout)
    if opt == "adam":
        optim: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    elif opt == "sgd":
        optim = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        optim = torch.optim.SGD(model.parameters(), lr=lr)
    lr_spikes = lr_spikes or {}
    rows: dict[str, list[float | int]] = {
        "step": [], "loss": [], "grad_norm": [], "lr": [], "val_step": [], "val_loss": []
    }
    for s in range(steps):
        cur = lr * schedule(s) * lr_spikes.get(s, 1.0)
        for g in optim.param_groups:
            g["lr"] = cur
        model.train()
        xb, yb = task.batch(bs, rng)
        if s in bad_batches:
            xb, yb = task.corrupt(xb, yb, rng)
        loss = task.loss_fn(model(xb), yb)
        optim.zero_grad()
        loss.backward()
        gn = float(torch.sqrt(sum((p.grad**2).sum() for p in model.parameters())))
        optim.step()
        if s % log_every == 0:
            rows["step"].append(s)
            rows["loss"].append(float(loss.detach()))
            rows["grad_norm"].append(gn)
            rows["lr"].append(lr * schedule(s))  # the scheduled rate (spikes are not logged)
        if eval_every and ((s + 1) % eval_every == 0 or s == steps - 1):
            model.eval()
            with torch.no_grad():
                rows["val_step"].append(s)
                rows["val_loss"].append(float(task.loss_fn(model(task.xv), task.yv)))
    return rows


def _round(v: float) -> float | str:
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return float(f"{v:.5g}")


def _pack(rows: dict[str, list[float | int]]) -> dict[str, list[Any]]:
    return {k: [int(x) if k.endswith("step") else _round(float(x)) for x in v]
            for k, v in rows.items()}


# -- the set ---------------------------------------------------------------------------------
def cosine(total: int, warmup: int = 0) -> Callable[[int], float]:
    def f(s: int) -> float:
        if s < warmup:
            return s / warmup
        return 0.5 * (1 + math.cos(math.pi * (s - warmup) / max(1, total - warmup)))

    return f


def step_decay(total: int) -> Callable[[int], float]:
    return lambda s: 0.1 ** (3 * s // total)


def grow_after(start: int, factor_per_step: float) -> Callable[[int], float]:
    return lambda s: 1.0 if s < start else factor_per_step ** (s - start)


def spike_steps(rng: np.random.Generator, steps: int, count: int, first: int = 120,
                gap: int = 120) -> list[int]:
    """`count` spike steps after `first`, at least `gap` apart, drawn at random."""
    for _ in range(10_000):
        picks = sorted(int(v) for v in rng.integers(first, steps - 40, size=count))
        if all(b - a >= gap for a, b in itertools.pairwise(picks)):
            return picks
    raise ValueError(f"cannot place {count} spikes {gap} apart in {first}..{steps - 40}")


def visible(rows: dict[str, list[float | int]], step: int) -> bool:
    """Did the induced event raise the loss? Its 4 logged points from the event on reach 2x
    the median of the 64 logged points before it. Recorded for the report, not used by the
    detectors' scoring."""
    i = rows["step"].index(step)
    before = np.asarray(rows["loss"][max(0, i - 64): i], np.float64)
    after = np.asarray(rows["loss"][i: i + 4], np.float64)
    return bool(not np.isfinite(after).all() or after.max() >= 2 * np.median(before))


def generate(seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    tasks = {"digits": digits_task(seed), "reg": regression_task(seed), "lm": lm_task(seed)}
    runs: list[dict[str, Any]] = []

    def add(name: str, kind: str, rows: dict, hparams: dict, total: int, **labels: Any) -> None:
        runs.append({"name": name, "kind": kind, "hparams": hparams, "total_steps": total,
                     "rows": _pack(rows), **labels})
        print(f"  {len(runs):3d} {name}", file=sys.stderr, flush=True)

    # spike runs: (task, optimizer, lr, batch size, steps, how, log_every)
    # (Adam's one-step LR spikes barely move an MLP's loss, so the MLP runs get their LR
    # spikes under SGD with momentum; every induced event is checked for visibility below.)
    spike_cfgs = [
        ("digits", "adam", 1e-3, 32, 700, "batch", 1),
        ("digits", "sgd", 0.02, 8, 700, "lr", 1),
        ("digits", "sgd", 0.02, 16, 700, "batch", 1),
        ("digits", "adam", 1e-3, 128, 600, "batch", 1),
        ("reg", "sgd", 0.01, 16, 700, "lr", 1),
        ("reg", "adam", 3e-3, 64, 600, "batch", 1),
        ("reg", "sgd", 0.01, 32, 700, "batch", 1),
        ("lm", "adam", 3e-3, 16, 600, "lr", 1),
        ("lm", "adam", 1e-3, 8, 600, "batch", 1),
        ("lm", "adam", 3e-3, 32, 600, "lr", 1),
        ("digits", "sgd", 0.02, 16, 2000, "lr", 5),
        ("reg", "adam", 1e-3, 32, 1500, "batch", 5),
    ]
    for i, (tk, opt, lr, bs, steps, how, every) in enumerate(spike_cfgs):
        s = spike_steps(rng, steps, 3, first=max(120, 40 * every), gap=max(120, 60 * every))
        if every > 1:  # induce on logged steps, so the label is a logged step
            s = [v - v % every for v in s]
        lr_spikes = {v: float(rng.uniform(30, 100)) for v in s} if how == "lr" else {}
        bad = tuple(s) if how == "batch" else ()
        sched = cosine(steps) if i % 3 == 0 else (lambda _s: 1.0)
        rows = train(tasks[tk], steps=steps, bs=bs, lr=lr, opt=opt, seed=seed * 100 + i,
                     schedule=sched, lr_spikes=lr_spikes, bad_batches=bad, log_every=every)
        add(f"spike{i:02d}_{tasks[tk].name}_{opt}_bs{bs}_{how}", "spike", rows,
            {"lr": lr, "batch_size": bs}, steps, spikes=s, how=how,
            visible=[visible(rows, v) for v in s])

    # clean runs
    clean_cfgs: list[tuple[str, str, float, int, int, Callable[[int], float], str]] = [
        ("digits", "adam", 1e-3, 8, 900, lambda s: 1.0, "small batch constant"),
        ("digits", "sgd", 0.02, 4, 900, lambda s: 1.0, "batch 4 momentum"),
        ("digits", "adam", 3e-3, 64, 600, cosine(600), "fast early drop cosine"),
        ("reg", "adam", 3e-3, 16, 900, step_decay(900), "step decay"),
        ("reg", "sgd", 0.02, 128, 900, step_decay(900), "step decay sgd"),
        ("lm", "adam", 3e-3, 16, 600, cosine(600, warmup=24), "warmup 4% + cosine"),
        ("lm", "adam", 1e-3, 4, 700, lambda s: 1.0, "batch 4 transformer"),
        ("digits", "plain", 0.1, 2, 1200, step_decay(1200), "batch 2 plain sgd step decay"),
    ]
    for i, (tk, opt, lr, bs, steps, sched, note) in enumerate(clean_cfgs):
        rows = train(tasks[tk], steps=steps, bs=bs, lr=lr, opt=opt, seed=seed * 100 + 50 + i,
                     schedule=sched)
        hp: dict[str, Any] = {"lr": lr, "batch_size": bs}
        if "warmup" in note:
            hp["warmup_steps"] = 24
        add(f"clean{i:02d}_{tasks[tk].name}_{opt}_bs{bs}", "clean", rows, hp, steps, note=note)

    # slowly unstable runs: the rate grows geometrically after `start`
    unstable_cfgs = [
        ("digits", "adam", 1e-3, 32, 900, 300, 1.012),
        ("reg", "adam", 1e-3, 32, 900, 300, 1.012),
        ("lm", "adam", 1e-3, 16, 800, 250, 1.010),
        ("digits", "sgd", 0.01, 32, 900, 300, 1.010),
    ]
    for i, (tk, opt, lr, bs, steps, start, f) in enumerate(unstable_cfgs):
        rows = train(tasks[tk], steps=steps, bs=bs, lr=lr, opt=opt, seed=seed * 100 + 80 + i,
                     schedule=grow_after(start, f))
        add(f"unstable{i:02d}_{tasks[tk].name}_{opt}", "unstable", rows,
            {"lr": lr, "batch_size": bs}, steps, grow_from=start)

    # sweeps: (study, task, optimizer, param, values, expected class)
    sweep_cfgs: list[tuple[str, str, str, str, list[float], str]] = [
        ("interior_adam_digits", "digits", "adam", "lr", [1e-4, 1e-3, 1e-2, 1e-1], "interior"),
        ("edge_high_adam_digits", "digits", "adam", "lr", [1e-5, 3e-5, 1e-4], "edge_high"),
        ("edge_low_dropout_digits", "digits", "adam", "dropout", [0.0, 0.5, 0.8], "edge_low"),
        ("feasible_edge_sgd_digits", "digits", "plain", "lr",
         [0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0], "feasibility_edge"),
        ("interior_adam_lm", "lm", "adam", "lr", [3e-4, 3e-3, 3e-2, 3e-1], "interior"),
        ("feasible_edge_sgd_reg", "reg", "sgd", "lr", [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
         "feasibility_edge"),
    ]
    for j, (study, tk, opt, param, values, expect) in enumerate(sweep_cfgs):
        for k, v in enumerate(values):
            lr = v if param == "lr" else 1e-3
            dropout = v if param == "dropout" else 0.0
            steps = 300
            rows = train(tasks[tk], steps=steps, bs=32, lr=lr, opt=opt,
                         seed=seed * 100 + 90 + j, eval_every=20, dropout=dropout)
            add(f"{study}/t{k:03d}", "sweep", rows,
                {"lr": lr, "batch_size": 32, "max_train_steps": steps, param: v}, steps,
                study=study, param=param, expect=expect)
    return runs


def write(runs: list[dict[str, Any]], out: Path) -> None:
    with gzip.open(out, "wt") as f:
        for r in runs:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    t0 = time.time()
    runs = generate(args.seed)
    write(runs, args.out)
    print(f"{len(runs)} runs -> {args.out} in {time.time() - t0:.1f}s")


if __name__ == "__main__":
    main()
