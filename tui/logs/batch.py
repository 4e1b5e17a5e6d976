"""ColumnBatch: what every reader hands to the run store.

Readers return their new points column by column (numpy arrays), never as per-row Python
objects, so that a million lines cost a few array operations downstream. A column may have
holes (an evaluation row has no `loss`): its `present` mask says which rows hold a value. A
non-finite value is a value (divergence needs it); only an absent one is a hole.

Restarts (issue 14): the one rule for every format lives here. Within the rows that carry the
same metrics from one source, a step that goes back (a run restarted from a checkpoint, an
event file rewritten over the same steps while it grows) replaces the rows at and after it:
`supersede` says which rows survive. The run store applies it on every append (against the
rows it holds), and readers apply it to what one read gathers (`BatchAccumulator`), so a file
that repeats its steps costs the memory of the rows that survive, not of every row written.
A batch with `reset` set (its file was truncated or replaced) replaces ALL the points its
source gave before.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

MAX_MARKS = 100  # restart marks kept per batch / store: a hostile file may restart every row
_NEVER = np.iinfo(np.int64).max


@dataclass
class Column:
    values: np.ndarray  # float64 [n]; anything where present is False
    present: np.ndarray | None = None  # bool [n]; None = every row has a value


@dataclass
class ColumnBatch:
    steps: np.ndarray  # int64 [n]
    times: np.ndarray  # float64 [n], Unix seconds; NaN where the file gives no time
    columns: dict[str, Column] = field(default_factory=dict)
    # the source was read again from its start: drop every point it gave before these rows
    reset: bool = False
    # (step, step before it) of restarts whose superseded rows were already dropped here
    restarts: list[tuple[int, int]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    @classmethod
    def empty(cls) -> ColumnBatch:
        return cls(np.empty(0, np.int64), np.empty(0, np.float64), {})

    @classmethod
    def from_records(cls, records: Iterable[tuple[int, float, Mapping[str, float]]]) -> ColumnBatch:
        """Build a batch from (step, time, {name: value}) rows; the slow path for readers."""
        rows = list(records)
        n = len(rows)
        steps = np.fromiter((r[0] for r in rows), np.int64, n)
        times = np.fromiter((r[1] for r in rows), np.float64, n)
        names: dict[str, None] = {}
        for _, _, metrics in rows:
            for name in metrics:
                names.setdefault(name, None)
        columns: dict[str, Column] = {}
        for name in names:
            values = np.fromiter((r[2].get(name, np.nan) for r in rows), np.float64, n)
            present = np.fromiter((name in r[2] for r in rows), np.bool_, n)
            columns[name] = Column(values, None if present.all() else present)
        return cls(steps, times, columns)

    def rename(self, mapping: Mapping[str, str]) -> ColumnBatch:
        """Columns renamed (e.g. onto canonical names); two names mapped onto one merge,
        the first present value of a row winning."""
        merged: dict[str, Column] = {}
        for name, col in self.columns.items():
            target = mapping.get(name, name)
            if target not in merged:
                merged[target] = col
                continue
            prev = merged[target]
            prev_present = (
                prev.present if prev.present is not None else np.ones(len(self), np.bool_)
            )
            if prev.present is None:
                continue
            take = ~prev_present
            if col.present is not None:
                take &= col.present
            values = np.where(take, col.values, prev.values)
            present = prev_present | take
            merged[target] = Column(values, None if present.all() else present)
        return ColumnBatch(self.steps, self.times, merged, self.reset, list(self.restarts))

    def take(self, keep: np.ndarray) -> ColumnBatch:
        """The rows where `keep` (a bool mask) is set."""
        cols: dict[str, Column] = {}
        for name, col in self.columns.items():
            present = None if col.present is None else col.present[keep]
            if present is not None and present.all():
                present = None
            if present is not None and not present.any():
                continue
            cols[name] = Column(col.values[keep], present)
        return ColumnBatch(self.steps[keep], self.times[keep], cols, self.reset, self.restarts)


class Superseding(NamedTuple):
    keep: np.ndarray | None  # rows of the new steps that survive (None: all of them)
    cut: int | None  # rows held before them at steps >= cut are superseded (None: none)
    marks: list[tuple[int, int]]  # (step, the step before it) of each restart, MAX_MARKS at most


def supersede(steps: np.ndarray, last: int | None = None) -> Superseding:
    """The restart rule for one sequence of rows (one source, one set of metrics), vectorised.

    A row whose step is below the row before it is a restart; it supersedes every earlier row
    at the same or a later step. So a row survives when every restart after it has a higher
    step, and rows held before `steps` (whose last step was `last`) survive below the lowest
    restart step. A row at the same step as the row right before it is no restart but replaces
    it, the value written last winning (LLaMA-Factory's ranks each append every row; a step
    logged again after a crash): one point per step, as TensorBoard and a reader of the file
    by step would have it."""
    n = int(steps.shape[0])
    if n == 0:
        return Superseding(None, None, [])
    first_back = last is not None and int(steps[0]) < last
    first_same = last is not None and int(steps[0]) == last
    back = np.empty(n, np.bool_)
    back[0] = first_back
    np.less(steps[1:], steps[:-1], out=back[1:])
    same_next = np.zeros(n, np.bool_)  # the next row is at this row's step: it replaces this one
    np.equal(steps[:-1], steps[1:], out=same_next[:-1])
    if not back.any():
        if not same_next.any() and not first_same:
            return Superseding(None, None, [])
        return Superseding(
            ~same_next if same_next.any() else None, last if first_same else None, []
        )
    where = np.flatnonzero(back)
    before = np.where(where > 0, steps[np.maximum(where - 1, 0)], last if first_back else 0)
    marks = [
        (int(s), int(b))
        for s, b in zip(steps[where[:MAX_MARKS]].tolist(), before[:MAX_MARKS].tolist(), strict=True)
    ]
    restart_steps = np.where(back, steps, _NEVER)
    # the lowest restart step at or after each row, then strictly after it
    low = np.minimum.accumulate(restart_steps[::-1])[::-1]
    later = np.empty(n, np.int64)
    later[:-1] = low[1:]
    later[-1] = _NEVER
    keep = (steps < later) & ~same_next
    cut = int(low[0])
    if first_same and last is not None:
        cut = min(cut, last)
    return Superseding(None if keep.all() else keep, cut, marks)


def row_patterns(
    batch: ColumnBatch, a: int = 0, b: int | None = None
) -> list[tuple[tuple[str, ...], np.ndarray | slice]]:
    """Rows a..b of a batch split by which metrics each row carries: (names, row indices), each
    pattern's rows in arrival order; a slice when every row carries every metric."""
    b = len(batch) if b is None else b
    n = b - a
    names = list(batch.columns)
    masks = [batch.columns[name].present for name in names]
    if all(m is None or m[a:b].all() for m in masks):
        return [(tuple(names), slice(a, b))]
    matrix = np.column_stack([m[a:b] if m is not None else np.ones(n, np.bool_) for m in masks])
    patterns, inverse = np.unique(matrix, axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")  # each pattern's rows stay in arrival order
    bounds = np.searchsorted(inverse[order], np.arange(patterns.shape[0] + 1))
    out: list[tuple[tuple[str, ...], np.ndarray | slice]] = []
    for p in range(patterns.shape[0]):
        keys = tuple(nm for nm, on in zip(names, patterns[p], strict=True) if on)
        if keys:
            out.append((keys, a + order[bounds[p] : bounds[p + 1]]))
    return out


def drop_superseded(batch: ColumnBatch) -> ColumnBatch:
    """The batch without the rows a later restart in it supersedes (`supersede`, per set of
    metrics); the restarts are remembered in `restarts` for the store to mark."""
    n = len(batch)
    if n < 2 or not bool((batch.steps[1:] < batch.steps[:-1]).any()):
        return batch  # no step goes back anywhere: none does within a pattern either
    keep = np.ones(n, np.bool_)
    marks = list(batch.restarts)
    for keys, idx in row_patterns(batch):
        if not keys:
            continue  # rows with no metric: the store takes none of them
        rows = np.arange(n)[idx] if isinstance(idx, slice) else idx
        sup = supersede(batch.steps[rows])
        if sup.keep is not None:
            keep[rows[~sup.keep]] = False
        marks.extend(m for m in sup.marks if m not in marks)
    out = batch.take(keep) if not keep.all() else batch
    out.restarts = marks[:MAX_MARKS]
    return out


class BatchAccumulator:
    """The batches of one read, joined; superseded rows are dropped whenever the rows gathered
    since the last compaction outgrow the survivors, so memory follows the surviving rows."""

    def __init__(self, compact_rows: int = 1 << 20) -> None:
        self.compact_rows = compact_rows
        self._parts: list[ColumnBatch] = []
        self._rows = 0
        self._kept = 0
        self._back = False  # a step went back since the last compaction

    def add(self, batch: ColumnBatch) -> None:
        if not len(batch):
            return
        steps = batch.steps
        if self._parts and int(steps[0]) < int(self._parts[-1].steps[-1]):
            self._back = True
        elif len(batch) > 1 and bool((steps[1:] < steps[:-1]).any()):
            self._back = True
        self._parts.append(batch)
        self._rows += len(batch)
        if self._back and self._rows > max(self.compact_rows, 2 * self._kept):
            self._compact()

    def _compact(self) -> None:
        merged = drop_superseded(concat_batches(self._parts))
        self._parts = [merged]
        self._rows = self._kept = len(merged)
        self._back = False

    def result(self) -> ColumnBatch:
        # small reads are handed out as read (the store applies the same rule); only a pile
        # that would cost memory is compacted
        if self._back and self._rows > self.compact_rows:
            self._compact()
        return concat_batches(self._parts)


def concat_batches(batches: list[ColumnBatch]) -> ColumnBatch:
    """One batch from several, rows in order; a column missing from a batch is a hole there."""
    reset = any(b.reset for b in batches)
    marks = [m for b in batches for m in b.restarts][:MAX_MARKS]
    batches = [b for b in batches if len(b)]
    if not batches:
        return ColumnBatch(np.empty(0, np.int64), np.empty(0), {}, reset, marks)
    if len(batches) == 1:
        one = batches[0]
        return ColumnBatch(one.steps, one.times, one.columns, reset, marks)
    steps = np.concatenate([b.steps for b in batches])
    times = np.concatenate([b.times for b in batches])
    cols = concat_columns([(b.columns, len(b)) for b in batches])
    return ColumnBatch(steps, times, cols, reset, marks)


def concat_columns(parts: list[tuple[Mapping[str, Column], int]]) -> dict[str, Column]:
    """The columns of consecutive row ranges (each part: its columns and its row count) as one
    set, in order of first appearance; a column missing from a part is a hole there."""
    names: dict[str, None] = {}
    for cols, _ in parts:
        names.update(dict.fromkeys(cols))
    columns: dict[str, Column] = {}
    for name in names:
        vals: list[np.ndarray] = []
        pres: list[np.ndarray] = []
        for cols, n in parts:
            col = cols.get(name)
            if col is None:
                vals.append(np.full(n, np.nan))
                pres.append(np.zeros(n, np.bool_))
            else:
                vals.append(col.values)
                pres.append(col.present if col.present is not None else np.ones(n, np.bool_))
        present = np.concatenate(pres)
        columns[name] = Column(np.concatenate(vals), None if present.all() else present)
    return columns
