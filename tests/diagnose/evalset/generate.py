"""Generate tunetop's labelled evaluation set for the diagnosis detectors from REAL training.

Plain PyTorch on CPU, a few seconds per run. Every run is trained for real; only the events are
scripted and their steps recorded (the labels):

- ``spike``: healthy training with induced spikes: the learning rate set to 30-100x the run's
  peak rate for one step (SGD with momentum for the MLPs, Adam for the transformer), or one
  corrupted batch (inputs scaled up, every label wrong) whose own loss is logged. Labels:
  ``spikes`` (for each event the first logged step whose loss it can affect), ``observable``
  (the event met `observable`, an objective rule that uses no detector: a non-finite loss, or
  one at least 2x the maximum of the previous 32 logged points), ``strength`` and ``tries``
  (an event that did not show was undone and redone twice as strong, up to 5 times). Batch sizes
  4-128, constant, cosine and step-decay schedules, logging every step or every 5. R13.
- ``clean``: healthy runs that must raise no warning: small-batch noise, a fast early drop,
  step-decay and cosine schedules, a short warmup.
- ``unstable``: the learning rate grows exponentially after a while, so the loss declines and
  then creeps up (R12: "loss going up during training instead of down").
- ``sweep``: learning-rate (and one dropout) sweeps, trials with a validation loss every 20
  steps; ``expect`` says how the study must be classified: ``interior``, ``edge_low``,
  ``edge_high`` (R5) or ``feasibility_edge`` (R16). It is the shape the trials have by the
  written definitions (`sweep_shape`, no tunetop code); a sweep that does not take its
  intended shape (``intended``) for a seed is trained again with other initialisations, up to
  4 times (``tries``).

Usage: ``python tests/diagnose/evalset/generate.py [--seed S] [--out FILE]``. The committed
file (evalset.jsonl.gz) is ``--seed 0``; the benchmark can generate held-out sets with other
seeds (different data order, initialisation and spike steps) to check that nothing was tuned
to the committed one.
"""

from __future__ import annotations

import argparse
import copy
import gzip
import itertools
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
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
        corrupt: Callable[[torch.Tensor, torch.Tensor, np.random.Generator, float], tuple],
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
            nn.Linear(64, 128),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(128, 64),
            nn.ReLU(),
            nn.Dropout(dropout),
            nn.Linear(64, 10),
        )

    def corrupt(xb: torch.Tensor, yb: torch.Tensor, r: np.random.Generator, k: float) -> tuple:
        # every label wrong (a shuffle of a batch of 4 leaves many labels right), inputs scaled
        wrong = torch.from_numpy(r.integers(1, 10, size=len(yb)))
        return xb * k, (yb + wrong) % 10

    return Task(
        "digits_mlp",
        xt[:1400],
        yt[:1400],
        xt[1400:],
        yt[1400:],
        make,
        nn.functional.cross_entropy,
        corrupt,
    )


def regression_task(seed: int) -> Task:
    rng = np.random.default_rng(2000 + seed)
    n = 3000
    x = rng.normal(size=(n, 10))
    w = rng.normal(size=10)
    y = np.sin(x @ w / 2) + 0.3 * (x[:, 0] * x[:, 1]) + 0.1 * rng.normal(size=n)
    xt = torch.tensor(x, dtype=torch.float32)
    yt = torch.tensor(y, dtype=torch.float32)[:, None]

    def make(dropout: float = 0.0) -> nn.Module:
        return nn.Sequential(
            nn.Linear(10, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(), nn.Linear(64, 1)
        )

    def corrupt(xb: torch.Tensor, yb: torch.Tensor, r: np.random.Generator, k: float) -> tuple:
        return xb * k, -yb * k

    return Task(
        "regression_mlp",
        xt[:2500],
        yt[:2500],
        xt[2500:],
        yt[2500:],
        make,
        nn.functional.mse_loss,
        corrupt,
    )


class TinyLM(nn.Module):
    def __init__(self, vocab: int, d: int = 32, seq: int = 24, layers: int = 1) -> None:
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.pos = nn.Parameter(torch.randn(seq, d) * 0.02)
        layer = nn.TransformerEncoderLayer(d, 4, 64, dropout=0.0, batch_first=True, norm_first=True)
        self.enc = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(d, vocab)
        self.register_buffer("mask", nn.Transformer.generate_square_subsequent_mask(seq))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        h = self.emb(tokens) + self.pos[: tokens.shape[1]]
        return self.out(
            self.enc(h, mask=self.mask[: tokens.shape[1], : tokens.shape[1]], is_causal=True)
        )


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

    def corrupt(xb: torch.Tensor, yb: torch.Tensor, r: np.random.Generator, k: float) -> tuple:
        # random targets: already the strongest corruption of a language batch (k unused)
        return xb, torch.from_numpy(r.integers(0, vocab, size=tuple(yb.shape)))

    return Task("tiny_transformer", x[:3500], y[:3500], x[3500:], y[3500:], make, loss_fn, corrupt)


# -- one training run ------------------------------------------------------------------------
OBS_WINDOW = 32  # logged points before an event that define "its recent past"
OBS_AFTER = 3  # logged points from the event's label on in which the spike must show
OBS_OVER_MAX = 2.0  # the spike reaches this many times the MAXIMUM of the recent past
MAX_TRIES = 5  # an event that does not show is redone up to this many times, twice as strong


def observable(loss: list[float | int], i: int) -> bool:
    """The objective rule that makes an induced event a real loss spike, independent of any
    detector: one of the logged losses at index i (the event's label) and the next 2 is
    non-finite, or at least OBS_OVER_MAX x the MAXIMUM of the OBS_WINDOW logged points before
    it: clearly above the run's whole recent noise envelope, not merely above its middle. (A
    rule on the median admits events inside the noise: in a batch-8 SGD run 2x the median and
    1.5x the recent max passes 2% of the 3-point windows of clean runs; this one passes under
    1%, all of them in batch-2..16 runs whose loss is near zero and spans orders of magnitude.)"""
    before = np.asarray(loss[max(0, i - OBS_WINDOW) : i], np.float64)
    before = before[np.isfinite(before)]
    after = np.asarray(loss[i : i + OBS_AFTER], np.float64)
    if not np.isfinite(after).all():
        return True
    if before.shape[0] == 0:
        return False
    return bool(after.max() >= OBS_OVER_MAX * float(before.max()))


@dataclass
class Event:
    """One induced spike. `at`: the step it is applied at; `label`: the first logged step whose
    loss it can affect (the step itself for a corrupted batch, whose loss is that batch's; the
    next logged step for a learning-rate spike, whose damage shows in the following losses)."""

    at: int
    how: str  # "lr": the rate is `strength` x the run's peak rate for one step; "batch": one
    # corrupted batch (inputs scaled by `strength`, labels shuffled / random / negated)
    strength: float
    label: int
    tries: int = 1
    observable: bool = False


def train(
    task: Task,
    *,
    steps: int,
    bs: int,
    lr: float,
    opt: str = "adam",
    seed: int = 0,
    schedule: Callable[[int], float] = lambda s: 1.0,
    events: list[Event] | None = None,
    eval_every: int = 0,
    log_every: int = 1,
    dropout: float = 0.0,
) -> dict[str, list[float | int]]:
    """Train for real; return the logged columns. The loss logged at step s is the loss of
    step s's batch before its update (what training loops print).

    Events are calibrated so that each is a real spike: the state (model, optimizer, data
    order) is saved before an event; once the loss at its label and the next 2 logged points
    are known, an event that is not `observable` is undone and redone twice as strong (at most
    MAX_TRIES times; its final strength, tries and observability are recorded in the event)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    model = task.make_model(dropout)
    if opt == "adam":
        optim: torch.optim.Optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    elif opt == "sgd":
        optim = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    else:
        optim = torch.optim.SGD(model.parameters(), lr=lr)
    by_step = {e.at: e for e in events or []}
    rows: dict[str, list[float | int]] = {
        "step": [],
        "loss": [],
        "grad_norm": [],
        "lr": [],
        "val_step": [],
        "val_loss": [],
    }
    saved: tuple[Event, Any] | None = None
    s = 0
    while s < steps:
        ev = by_step.get(s)
        if ev is not None and (saved is None or saved[0] is not ev):
            saved = (
                ev,
                copy.deepcopy(
                    (
                        model.state_dict(),
                        optim.state_dict(),
                        rng.bit_generator.state,
                        torch.get_rng_state(),
                        {k: len(v) for k, v in rows.items()},
                    )
                ),
            )
        cur = lr * schedule(s)
        if ev is not None and ev.how == "lr":
            cur = lr * ev.strength
        for g in optim.param_groups:
            g["lr"] = cur
        model.train()
        xb, yb = task.batch(bs, rng)
        if ev is not None and ev.how == "batch":
            xb, yb = task.corrupt(xb, yb, rng, ev.strength)
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
        s += 1
        if saved is not None and rows["step"] and rows["step"][-1] >= saved[0].label:
            ev0, state = saved
            i = rows["step"].index(ev0.label)
            if len(rows["step"]) >= i + OBS_AFTER or s == steps:
                ev0.observable = observable(rows["loss"], i)
                saved = None  # decided, unless redone below
                if not ev0.observable and ev0.tries < MAX_TRIES:  # undo, redo it stronger
                    saved = (ev0, state)
                    msd, osd, rstate, tstate, lens = copy.deepcopy(state)
                    model.load_state_dict(msd)
                    optim.load_state_dict(osd)
                    rng.bit_generator.state = rstate
                    torch.set_rng_state(tstate)
                    for k, n in lens.items():
                        del rows[k][n:]
                    ev0.tries += 1
                    ev0.strength *= 2
                    s = ev0.at
    return rows


def _round(v: float) -> float | str:
    if not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    return float(f"{v:.5g}")


def _pack(rows: dict[str, list[float | int]]) -> dict[str, list[Any]]:
    return {
        k: [int(x) if k.endswith("step") else _round(float(x)) for x in v] for k, v in rows.items()
    }


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


def spike_steps(
    rng: np.random.Generator, steps: int, count: int, first: int = 120, gap: int = 120
) -> list[int]:
    """`count` spike steps after `first`, at least `gap` apart, drawn at random."""
    for _ in range(10_000):
        picks = sorted(int(v) for v in rng.integers(first, steps - 40, size=count))
        if all(b - a >= gap for a, b in itertools.pairwise(picks)):
            return picks
    raise ValueError(f"cannot place {count} spikes {gap} apart in {first}..{steps - 40}")


SWEEP_TRIES = 4  # trainings of a sweep until it takes its intended shape


def sweep_shape(trials: list[tuple[float, dict[str, list[float | int]]]]) -> str:
    """The class a sweep's data has, by the definitions in DESIGN.md and RULES.md, not by
    tunetop's code: a trial is infeasible when its training loss is non-finite or above 5x its
    first value (R16); the objective is a feasible trial's lowest validation loss (R1); the
    best trial at the lowest or highest swept value is an edge (R5), at the largest feasible
    value with every larger one infeasible a feasibility edge (R16), else interior."""
    feasible: list[tuple[float, float]] = []
    infeasible: list[float] = []
    for v, rows in trials:
        loss = np.asarray(rows["loss"], np.float64)
        bad = not np.isfinite(loss).all() or bool((loss > 5 * loss[0]).any())
        val = np.asarray(rows["val_loss"], np.float64)
        if bad or not np.isfinite(val).any():
            infeasible.append(v)
        else:
            feasible.append((v, float(np.nanmin(val))))
    if not feasible:
        return "none"
    best = min(feasible, key=lambda t: t[1])[0]
    values = sorted(v for v, _ in trials)
    if best == values[0]:
        return "edge_low"
    if best == values[-1]:
        return "edge_high"
    top_feasible = max(v for v, _ in feasible)
    if infeasible and best == top_feasible and min(infeasible) > top_feasible:
        return "feasibility_edge"
    return "interior"


def generate(seed: int = 0) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    tasks = {"digits": digits_task(seed), "reg": regression_task(seed), "lm": lm_task(seed)}
    corrupt_scale = {"digits": 12.0, "reg": 10.0, "lm": 1.0}  # a corrupted batch's input scale
    runs: list[dict[str, Any]] = []

    def add(name: str, kind: str, rows: dict, hparams: dict, total: int, **labels: Any) -> None:
        runs.append(
            {
                "name": name,
                "kind": kind,
                "hparams": hparams,
                "total_steps": total,
                "rows": _pack(rows),
                **labels,
            }
        )
        print(f"  {len(runs):3d} {name}", file=sys.stderr, flush=True)

    # spike runs: (task, optimizer, lr, batch size, steps, how, log_every)
    # Adam normalises a one-step LR spike's gradient, so it barely moves an MLP's loss: the MLP
    # runs get their LR spikes under SGD with momentum, the transformer under Adam. A digits
    # classifier near zero loss has near-zero gradients, which no LR spike turns into a loss
    # spike: its events are corrupted batches. Every event is calibrated in `train` to be a
    # real, observable spike (`observable`).
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
        ("reg", "sgd", 0.01, 16, 2000, "lr", 5),
        ("digits", "adam", 1e-3, 32, 1500, "batch", 5),
        ("digits", "sgd", 0.005, 4, 900, "batch", 1),
        ("reg", "sgd", 0.01, 8, 700, "lr", 1),
    ]
    for i, (tk, opt, lr, bs, steps, how, every) in enumerate(spike_cfgs):
        at = spike_steps(rng, steps, 3, first=max(120, 40 * every), gap=max(120, 60 * every))
        events = []
        for v in at:
            v -= v % every  # the label is a logged step
            if how == "lr":  # applied on the step before it; its damage shows at the label
                events.append(Event(v - 1, "lr", float(rng.uniform(30, 100)), v))
            else:  # the corrupted batch's own loss is logged
                events.append(Event(v, "batch", corrupt_scale[tk], v))
        sched = (
            cosine(steps) if i % 3 == 0 else step_decay(steps) if i % 3 == 2 else (lambda _s: 1.0)
        )
        rows = train(
            tasks[tk],
            steps=steps,
            bs=bs,
            lr=lr,
            opt=opt,
            seed=seed * 100 + i,
            schedule=sched,
            events=events,
            log_every=every,
        )
        add(
            f"spike{i:02d}_{tasks[tk].name}_{opt}_bs{bs}_{how}",
            "spike",
            rows,
            {"lr": lr, "batch_size": bs},
            steps,
            spikes=[e.label for e in events],
            how=how,
            observable=[e.observable for e in events],
            strength=[round(e.strength, 3) for e in events],
            tries=[e.tries for e in events],
        )

    # clean runs
    clean_cfgs: list[tuple[str, str, float, int, int, Callable[[int], float], str]] = [
        ("digits", "adam", 1e-3, 8, 900, lambda s: 1.0, "small batch constant"),
        ("digits", "sgd", 0.005, 4, 900, lambda s: 1.0, "batch 4 momentum"),
        ("digits", "adam", 3e-3, 64, 600, cosine(600), "fast early drop cosine"),
        ("reg", "adam", 3e-3, 16, 900, step_decay(900), "step decay"),
        ("reg", "sgd", 0.02, 128, 900, step_decay(900), "step decay sgd"),
        ("lm", "adam", 3e-3, 16, 600, cosine(600, warmup=24), "warmup 4% + cosine"),
        ("lm", "adam", 1e-3, 4, 700, lambda s: 1.0, "batch 4 transformer"),
        ("digits", "plain", 0.1, 2, 1200, step_decay(1200), "batch 2 plain sgd step decay"),
    ]
    for i, (tk, opt, lr, bs, steps, sched, note) in enumerate(clean_cfgs):
        rows = train(
            tasks[tk], steps=steps, bs=bs, lr=lr, opt=opt, seed=seed * 100 + 50 + i, schedule=sched
        )
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
        rows = train(
            tasks[tk],
            steps=steps,
            bs=bs,
            lr=lr,
            opt=opt,
            seed=seed * 100 + 80 + i,
            schedule=grow_after(start, f),
        )
        add(
            f"unstable{i:02d}_{tasks[tk].name}_{opt}",
            "unstable",
            rows,
            {"lr": lr, "batch_size": bs},
            steps,
            grow_from=start,
        )

    # sweeps: (study, task, optimizer, param, values, expected class). The plain-SGD digits
    # grid has no 1.0: at 1.0 a trial is feasible (under 5x its first loss) but worse than 0.3
    # in some seeds and blows up in others, so the study's true class would depend on the seed.
    sweep_cfgs: list[tuple[str, str, str, str, list[float], str]] = [
        ("interior_adam_digits", "digits", "adam", "lr", [1e-4, 1e-3, 1e-2, 1e-1], "interior"),
        ("edge_high_adam_digits", "digits", "adam", "lr", [1e-5, 3e-5, 1e-4], "edge_high"),
        ("edge_low_dropout_digits", "digits", "adam", "dropout", [0.0, 0.5, 0.8], "edge_low"),
        (
            "feasible_edge_sgd_digits",
            "digits",
            "plain",
            "lr",
            [0.01, 0.03, 0.1, 0.3, 3.0, 10.0],
            "feasibility_edge",
        ),
        ("interior_adam_lm", "lm", "adam", "lr", [3e-4, 3e-3, 3e-2, 3e-1], "interior"),
        (
            "feasible_edge_sgd_reg",
            "reg",
            "sgd",
            "lr",
            [0.003, 0.01, 0.03, 0.1, 0.3, 1.0],
            "feasibility_edge",
        ),
    ]
    for j, (study, tk, opt, param, values, expect) in enumerate(sweep_cfgs):
        # the class is a property of the data: a sweep whose trials did not come out in the
        # intended shape (say its top rate stayed under 5x its first loss for this seed) is
        # trained again with other initialisations and batches, up to SWEEP_TRIES times; if
        # none takes the shape, it is labelled with the shape it has (`intended` keeps the aim)
        for attempt in range(SWEEP_TRIES):
            trials = []
            for v in values:
                lr = v if param == "lr" else 1e-3
                dropout = v if param == "dropout" else 0.0
                rows = train(
                    tasks[tk],
                    steps=300,
                    bs=32,
                    lr=lr,
                    opt=opt,
                    seed=seed * 100 + 90 + j + 1000 * attempt,
                    eval_every=20,
                    dropout=dropout,
                )
                trials.append((v, lr, rows))
            shape = sweep_shape([(v, rows) for v, _, rows in trials])
            if shape == expect:
                break
        for k, (v, lr, rows) in enumerate(trials):
            add(
                f"{study}/t{k:03d}",
                "sweep",
                rows,
                {"lr": lr, "batch_size": 32, "max_train_steps": 300, param: v},
                300,
                study=study,
                param=param,
                expect=shape,
                intended=expect,
                tries=attempt + 1,
            )
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
