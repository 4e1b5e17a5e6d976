"""The in-memory run store: columnar numpy arrays, appended in amortized O(1).

Layout (DESIGN.md "Shape"): rows that carry the same set of metrics from the same source file
form a *group*; a group's step and wall-time columns are shared by all its metrics. A metric's
series is the concatenation of the groups that hold it. Values are float32 (a point costs
4 bytes plus its share of the 16-byte step/time row), so 10 runs x 1,000,000 steps x 4 metrics
stay near 320 MB.

Restarts: when a source's step goes backwards (a run restarted from a checkpoint, a file
rewritten), the points it gives later supersede the earlier ones at the same or later steps,
instead of duplicating them; the restart is recorded in `RunStore.restarts`.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from tui.logs.batch import ColumnBatch

_GROWTH = 1.125  # amortized O(1) appends with at most 12.5% spare capacity
_MIN_CAPACITY = 256


class GrowableArray:
    """A 1-D numpy array with spare capacity; `view()` is zero-copy."""

    __slots__ = ("_buf", "_n")

    def __init__(self, dtype: np.dtype | type, capacity: int = 0) -> None:
        self._buf = np.empty(max(capacity, 0), dtype)
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def extend(self, values: np.ndarray) -> None:
        k = int(values.shape[0])
        need = self._n + k
        if need > self._buf.shape[0]:
            cap = max(int(self._buf.shape[0] * _GROWTH), need, _MIN_CAPACITY)
            buf = np.empty(cap, self._buf.dtype)
            buf[: self._n] = self._buf[: self._n]
            self._buf = buf
        self._buf[self._n : need] = values
        self._n = need

    def view(self) -> np.ndarray:
        return self._buf[: self._n]

    @property
    def nbytes(self) -> int:
        return int(self._buf.nbytes)


class Group:
    """Rows from one source carrying one set of metrics; step and time shared by all of them."""

    def __init__(self, source: str, names: tuple[str, ...]) -> None:
        self.source = source
        self.names = names
        self.steps = GrowableArray(np.int64)
        self.times = GrowableArray(np.float64)
        self.values = {name: GrowableArray(np.float32) for name in names}
        self.last_step: int | None = None
        self.max_seen: int = -(1 << 62)  # largest step ever appended (no restart: the last)
        # (step, rows before it): rows before that index at steps >= step are superseded
        self.superseded: list[tuple[int, int]] = []

    def __len__(self) -> int:
        return len(self.steps)

    def append(self, steps: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray]) -> None:
        self.steps.extend(steps)
        if steps.shape[0]:
            self.max_seen = max(self.max_seen, int(steps.max()))
        self.times.extend(times)
        for name in self.names:
            self.values[name].extend(values[name])

    @property
    def nbytes(self) -> int:
        return self.steps.nbytes + self.times.nbytes + sum(v.nbytes for v in self.values.values())


@dataclass(frozen=True)
class Restart:
    """A source's step went back from `previous_max` to `step` (a restarted run)."""

    source: str
    step: int
    previous_max: int


@dataclass(frozen=True)
class Series:
    """One metric: steps (int64), values (float32) and wall times (float64), in step order."""

    name: str
    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return int(self.steps.shape[0])


@dataclass
class _Cache:
    version: int
    series: Series


@dataclass
class RunStore:
    """All points of one run. Thread-safe for one writer and many readers."""

    groups: list[Group] = field(default_factory=list)
    restarts: list[Restart] = field(default_factory=list)
    version: int = 0  # bumped on every change; widgets and detectors compare it
    source_priority: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._by_key: dict[tuple[str, tuple[str, ...]], Group] = {}
        self._cache: dict[str, _Cache] = {}
        self._lock = threading.RLock()

    # -- writing -------------------------------------------------------------------------
    def append(self, batch: ColumnBatch, source: str = "") -> int:
        """Add a reader's new rows; returns the number of points (metric values) added."""
        n = len(batch)
        if n == 0 or not batch.columns:
            return 0
        with self._lock:
            added = self._append_segment(batch, source, 0, n)
            self.version += 1
            return added

    def _append_segment(self, batch: ColumnBatch, source: str, a: int, b: int) -> int:
        """Rows a..b of the batch, split by which metrics each row carries."""
        n = b - a
        names = list(batch.columns)
        masks = [batch.columns[name].present for name in names]
        if all(m is None or m[a:b].all() for m in masks):
            # one pattern: slices are views, no copy of the batch's columns
            return self._append_rows(batch, source, tuple(names), slice(a, b))
        matrix = np.column_stack([m[a:b] if m is not None else np.ones(n, np.bool_) for m in masks])
        patterns, inverse = np.unique(matrix, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        order = np.argsort(inverse, kind="stable")  # each pattern's rows stay in arrival order
        bounds = np.searchsorted(inverse[order], np.arange(patterns.shape[0] + 1))
        added = 0
        for p in range(patterns.shape[0]):
            keys = tuple(nm for nm, on in zip(names, patterns[p], strict=True) if on)
            if keys:
                added += self._append_rows(
                    batch, source, keys, a + order[bounds[p] : bounds[p + 1]]
                )
        return added

    def _append_rows(
        self, batch: ColumnBatch, source: str, keys: tuple[str, ...], idx: np.ndarray | slice
    ) -> int:
        group = self._by_key.get((source, keys))
        if group is None:
            group = Group(source, keys)
            self._by_key[(source, keys)] = group
            self.groups.append(group)
        steps = batch.steps[idx]
        self._note_restarts(group, steps)
        group.append(
            steps,
            batch.times[idx],
            {k: batch.columns[k].values[idx].astype(np.float32, copy=False) for k in keys},
        )
        for k in keys:
            self._cache.pop(k, None)
        return int(steps.shape[0]) * len(keys)

    # -- reading -------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self._lock:
            seen: dict[str, None] = {}
            for g in self.groups:
                for n in g.names:
                    seen.setdefault(n, None)
            return list(seen)

    def has(self, name: str) -> bool:
        return any(name in g.values for g in self.groups)

    def count(self, name: str) -> int:
        return len(self.series(name))

    def series(self, name: str) -> Series:
        """The metric's points in step order, superseded points left out. Zero-copy when the
        metric lives in one group with no restart (the common case)."""
        with self._lock:
            cached = self._cache.get(name)
            if cached is not None and cached.version == self.version:
                return cached.series
            groups = [g for g in self.groups if name in g.values]
            if groups and self.source_priority:
                top = max(self.source_priority.get(g.source, 0) for g in groups)
                groups = [g for g in groups if self.source_priority.get(g.source, 0) == top]
            parts = []
            for g in groups:
                steps = g.steps.view()
                values = g.values[name].view()
                times = g.times.view()
                keep = self._kept_rows(g)
                if keep is not None:
                    steps, values, times = steps[keep], values[keep], times[keep]
                parts.append((steps, values, times))
            if not parts:
                s = Series(name, np.empty(0, np.int64), np.empty(0, np.float32), np.empty(0))
            elif len(parts) == 1:
                s = Series(name, *parts[0])
            else:
                steps = np.concatenate([p[0] for p in parts])
                order = np.argsort(steps, kind="stable")
                s = Series(
                    name,
                    steps[order],
                    np.concatenate([p[1] for p in parts])[order],
                    np.concatenate([p[2] for p in parts])[order],
                )
            self._cache[name] = _Cache(self.version, s)
            return s

    def _note_restarts(self, group: Group, steps: np.ndarray) -> None:
        """A group's step going backwards is a restart: the rows it had at or after that step
        are superseded by the new ones. Judged per group, so an evaluation row logged late
        (its step below the last training step) supersedes nothing of the training rows."""
        if steps.shape[0] == 0:
            return
        # compared with the row before it, not the running maximum: after a restart the
        # new rows climb again from the restart step
        prev = group.last_step
        before = np.concatenate(([steps[0] if prev is None else prev], steps[:-1]))
        base = len(group)
        for i in np.flatnonzero(steps < before).tolist():
            group.superseded.append((int(steps[i]), base + i))
            mark = Restart(group.source, int(steps[i]), int(before[i]))
            if mark not in self.restarts:
                self.restarts.append(mark)
        group.last_step = int(steps[-1])

    def _kept_rows(self, group: Group) -> np.ndarray | None:
        """Mask of the group's rows not superseded by a later restart."""
        if not group.superseded:
            return None
        steps = group.steps.view()
        keep = np.ones(steps.shape[0], np.bool_)
        rows = np.arange(steps.shape[0])
        for step, rows_before in group.superseded:
            keep &= ~((rows < rows_before) & (steps >= step))
        return keep

    @property
    def nbytes(self) -> int:
        return sum(g.nbytes for g in self.groups)

    @property
    def last_step(self) -> int | None:
        """The largest step among the points kept (a restart can lower it)."""
        with self._lock:
            best: int | None = None
            for g in self.groups:
                if not len(g):
                    continue
                if g.superseded:
                    keep = self._kept_rows(g)
                    steps = g.steps.view()[keep] if keep is not None else g.steps.view()
                    top = int(steps.max()) if steps.shape[0] else None
                else:
                    top = g.max_seen
                if top is not None and (best is None or top > best):
                    best = top
            return best
