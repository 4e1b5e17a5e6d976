"""ColumnBatch: what every reader hands to the run store.

Readers return their new points column by column (numpy arrays), never as per-row Python
objects, so that a million lines cost a few array operations downstream. A column may have
holes (an evaluation row has no `loss`): its `present` mask says which rows hold a value. A
non-finite value is a value (divergence needs it); only an absent one is a hole.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass
class Column:
    values: np.ndarray  # float64 [n]; anything where present is False
    present: np.ndarray | None = None  # bool [n]; None = every row has a value


@dataclass
class ColumnBatch:
    steps: np.ndarray  # int64 [n]
    times: np.ndarray  # float64 [n], Unix seconds; NaN where the file gives no time
    columns: dict[str, Column] = field(default_factory=dict)

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
        return ColumnBatch(self.steps, self.times, merged)


def concat_batches(batches: list[ColumnBatch]) -> ColumnBatch:
    """One batch from several, rows in order; a column missing from a batch is a hole there."""
    batches = [b for b in batches if len(b)]
    if not batches:
        return ColumnBatch.empty()
    if len(batches) == 1:
        return batches[0]
    steps = np.concatenate([b.steps for b in batches])
    times = np.concatenate([b.times for b in batches])
    return ColumnBatch(steps, times, concat_columns([(b.columns, len(b)) for b in batches]))


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
