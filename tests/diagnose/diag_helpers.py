"""Helpers of the diagnosis tests: synthetic runs made of rows, their stores and Runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from tui.logs.batch import ColumnBatch
from tui.logs.model import Run
from tui.logs.store import RunStore

Rows = list[tuple[int, float, dict[str, float]]]


def make_rows(
    n: int = 600,
    seed: int = 0,
    spikes: tuple[int, ...] = (),
    nan_from: int | None = None,
    warmup: int = 0,
    val_every: int = 0,
    clipped: bool = False,
    noise: float = 0.05,
) -> Rows:
    """A healthy-looking run: loss decaying to a floor with multiplicative noise, grad norms,
    lr (with an optional linear warmup), spikes multiplying the loss at given steps."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    loss = (2.0 * np.exp(-t / (n / 8)) + 0.3) * np.exp(noise * rng.normal(size=n))
    for s in spikes:
        loss[s] *= 6.0
        if s + 1 < n:
            loss[s + 1] *= 3.0
    if nan_from is not None:
        loss[nan_from:] = np.nan
    grad = np.exp(0.2 * rng.normal(size=n))
    rows: Rows = []
    for i in range(n):
        m: dict[str, float] = {
            "loss": float(loss[i]),
            "grad_norm": float(grad[i]),
            "lr": 1e-3 * min(1.0, i / warmup) if warmup else 1e-3,
        }
        if clipped:
            m["clipped"] = float(grad[i] > 0.8)
        rows.append((i, 1000.0 + i, m))
        if val_every and (i + 1) % val_every == 0:
            rows.append((i, 1000.0 + i, {"val_loss": float(loss[i] * 1.1)}))
    return rows


def store_of(rows: Rows) -> RunStore:
    st = RunStore()
    if rows:
        st.append(ColumnBatch.from_records(rows))
    return st


def run_of(
    rows: Rows,
    total_steps: int | None = None,
    hparams: dict[str, Any] | None = None,
    run_id: str = "r",
    status: str = "finished",
) -> Run:
    rj = {"status": status}
    if total_steps:
        rj["total_steps"] = total_steps
    return Run(
        id=run_id,
        path=Path(run_id),
        format="jsonl",
        hparams=dict(hparams or {}),
        store=store_of(rows),
        run_json=rj,
    )
