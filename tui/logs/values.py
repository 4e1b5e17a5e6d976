"""Helpers shared by the text readers (JSONL, CSV, trainer_state.json).

They agree on three things, so that a run reads the same whatever format it was logged in:

- Which field is the step and which the wall time (`STEP_KEYS`, `TIME_KEYS`, first present wins,
  row by row). Those fields are never metrics themselves.
- What a row without a step gets (`StepFiller`): the step of the row before it (an evaluation
  row written right after a training row belongs to that step), or, while the file has given no
  step at all yet, its row index counted from 0 (a plain "one line per step" log).
- What a value is: numbers and booleans (0/1) are values, non-finite ones included (divergence
  needs them); null / an empty cell is a hole; strings, lists and objects are not metrics.

Errors are rate-limited per read (`ErrorLog`): a file of 10,000 garbage lines gives a handful of
lines naming the first few and a count, not 10,000 messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tui.logs.batch import Column, ColumnBatch, concat_columns

# first present wins, row by row: `iter` / `iters` (nanoGPT-style loops, mmengine),
# `current_steps` (LLaMA-Factory's trainer_log.jsonl), `training_iteration` (Ray Tune)
STEP_KEYS: tuple[str, ...] = (
    "step",
    "global_step",
    "iteration",
    "trainer/global_step",
    "iter",
    "iters",
    "current_steps",
    "training_iteration",
)
TIME_KEYS: tuple[str, ...] = ("time", "timestamp", "wall_time", "_timestamp")
_SPECIAL = frozenset(STEP_KEYS + TIME_KEYS)

# Steps beyond this are not steps (a float 1e30 cast to int64 would wrap around silently).
_MAX_STEP = float(2**62)

MAX_ERRORS_PER_READ = 5


@dataclass
class ErrorLog:
    """Error lines of one read: the first `limit` verbatim, then one line counting the rest."""

    path: Path
    limit: int = MAX_ERRORS_PER_READ
    lines: list[str] = field(default_factory=list)
    dropped: int = 0

    def add(self, message: str) -> None:
        if len(self.lines) < self.limit:
            self.lines.append(f"{self.path}: {message}")
        else:
            self.dropped += 1

    def result(self) -> list[str]:
        if self.dropped:
            return [*self.lines, f"{self.path}: ... and {self.dropped} more bad records skipped"]
        return list(self.lines)


# A parsed column: float64 values and a presence mask (None = every row has a value).
Values = tuple[np.ndarray, np.ndarray | None]


def arrow_numeric(col: pa.ChunkedArray | pa.Array, *, as_time: bool = False) -> Values | None:
    """An Arrow column as float64 values + mask, or None when it holds no numbers.

    Integers, floats and booleans (0/1) are numbers; a timestamp column is one only where it
    is the wall time (`as_time`), converted to Unix seconds. Null-typed columns (every cell
    empty) are None: they would only add holes.
    """
    t = col.type
    if pa.types.is_timestamp(t):
        if not as_time:
            return None
        col = pc.divide(pc.cast(pc.cast(col, pa.timestamp("ns")), pa.int64()), 1e9)
        t = col.type
    if not (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t)):
        return None
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    if col.null_count == len(col):
        return None
    if col.null_count == 0:
        if pa.types.is_floating(t) and t == pa.float64():
            return col.to_numpy(zero_copy_only=False), None
        return col.to_numpy(zero_copy_only=False).astype(np.float64), None
    present = col.is_valid().to_numpy(zero_copy_only=False)
    values = pc.cast(col, pa.float64()).fill_null(np.nan).to_numpy(zero_copy_only=False)
    return values, present


def coalesce(candidates: list[Values], n: int) -> Values | None:
    """Row by row, the first candidate that holds a value (STEP_KEYS / TIME_KEYS order)."""
    if not candidates:
        return None
    values, present = candidates[0]
    if len(candidates) == 1:
        return values, present
    values = values.copy()
    have = np.ones(n, np.bool_) if present is None else present.copy()
    for v, p in candidates[1:]:
        take = ~have if p is None else (~have & p)
        values[take] = v[take]
        have |= take
    return values, (None if have.all() else have)


@dataclass
class StepFiller:
    """Turns the step field of successive reads into int64 steps (see the module docstring)."""

    last_step: int | None = None  # the last step the file gave or implied
    rows: int = 0  # rows seen so far (the row index of a file with no step field)

    def fill(self, raw: Values | None, n: int) -> np.ndarray:
        if n == 0:
            return np.empty(0, np.int64)
        if raw is not None and raw[1] is None:
            # the common case, every row with a sane step: one conversion, no forward fill
            values = raw[0]
            lo, hi = values.min(), values.max()  # NaN propagates into both
            if -_MAX_STEP < lo and hi < _MAX_STEP:
                steps = values.astype(np.int64)
                self.last_step = int(steps[-1])
                self.rows += n
                return steps
        if raw is None:
            values = np.zeros(n)
            present = np.zeros(n, np.bool_)
        else:
            values, p = raw
            present = np.ones(n, np.bool_) if p is None else p.copy()
            # a NaN or absurd step is no step
            present &= np.isfinite(values) & (np.abs(values) < _MAX_STEP)
        steps = np.zeros(n, np.int64)
        steps[present] = values[present].astype(np.int64)
        # forward fill: each row takes the step of the last row (at or before it) that had one
        idx = np.where(present, np.arange(n), -1)
        np.maximum.accumulate(idx, out=idx)
        have = idx >= 0
        steps[have] = steps[idx[have]]
        lead = ~have  # rows before this read's first step
        if lead.any():
            if self.last_step is not None:
                steps[lead] = self.last_step
            else:
                steps[lead] = self.rows + np.flatnonzero(lead)
        self.last_step = int(steps[-1]) if (self.last_step is not None or have.any()) else None
        self.rows += n
        return steps


def build_batch(
    columns: dict[str, Values], n: int, steps: StepFiller, *, time_columns: dict[str, Values]
) -> ColumnBatch:
    """A ColumnBatch from parsed columns: step and time picked out, the rest kept as metrics.

    `columns` holds every numeric field by its name (step/time fields included); `time_columns`
    holds time fields parsed for the wall time (they may be timestamps, not numbers).
    """
    if n == 0:
        return ColumnBatch.empty()
    step_raw = coalesce([columns[k] for k in STEP_KEYS if k in columns], n)
    time_raw = coalesce([time_columns[k] for k in TIME_KEYS if k in time_columns], n)
    if time_raw is None:
        times = np.full(n, np.nan)
    else:
        tv, tp = time_raw
        times = tv if tp is None else np.where(tp, tv, np.nan)
    out: dict[str, Column] = {}
    for name, (values, present) in columns.items():
        if name in _SPECIAL:
            continue
        if present is not None and present.all():
            present = None
        out[name] = Column(values, present)
    return ColumnBatch(steps.fill(step_raw, n), times, out)


def concat_values(parts: list[tuple[dict[str, Values], int]]) -> tuple[dict[str, Values], int]:
    """Parsed column sets of consecutive row ranges as one set (a column missing in a part is a
    hole there)."""
    parts = [p for p in parts if p[1]]
    if not parts:
        return {}, 0
    if len(parts) == 1:
        return parts[0]
    merged = concat_columns([({k: Column(*v) for k, v in c.items()}, n) for c, n in parts])
    return {k: (c.values, c.present) for k, c in merged.items()}, sum(n for _, n in parts)


def python_number(value: object) -> float | None:
    """A JSON value as a metric value: numbers and booleans; None for anything else."""
    if isinstance(value, float):
        return value
    if isinstance(value, int):  # bool is an int: True -> 1.0
        try:
            return float(value)
        except OverflowError:  # an integer beyond float range is no metric value
            return None
    return None


def columns_from_dicts(rows: list[dict[str, object]]) -> dict[str, Values]:
    """The slow path: parsed objects (one per row) as columns of their numeric fields."""
    n = len(rows)
    names: dict[str, None] = {}
    for row in rows:
        names.update(dict.fromkeys(row))
    out: dict[str, Values] = {}
    for name in names:
        got = [python_number(row.get(name)) for row in rows]
        present = np.fromiter((v is not None for v in got), np.bool_, n)
        if not present.any():
            continue
        values = np.fromiter((np.nan if v is None else v for v in got), np.float64, n)
        out[name] = (values, None if present.all() else present)
    return out
