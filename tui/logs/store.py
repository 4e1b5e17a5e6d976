"""The in-memory run store: columnar numpy arrays, appended in amortized O(1).

Layout (DESIGN.md "Shape"): rows that carry the same set of metrics from the same source file
form a *group*; a group's step and wall-time columns are shared by all its metrics. A metric's
series is the concatenation of the groups that hold it. Values are float32 (a point costs
4 bytes plus its share of the 16-byte step/time row), so 10 runs x 1,000,000 steps x 4 metrics
stay near 320 MB.

Restarts: when a source's step goes backwards (a run restarted from a checkpoint, a file
rewritten), the points it gives later supersede the earlier ones at the same or later steps
(batch.supersede, the one rule every format follows); a row at the same step as the row
before it replaces it, the value written last winning. Superseded rows are dropped, not masked:
a group's steps therefore stay sorted, and the memory of a file that repeats its steps is
that of the rows that survive. The restart is recorded in `RunStore.restarts` (the first
MAX_MARKS of them). A reset batch (its file truncated or replaced) first drops every point its
source gave (`drop_source`): a healthy rerun written over a diverged run is not shown diverged.

Readers on other threads hold zero-copy views of the arrays: rows are only ever appended in
place; dropping rows builds new arrays, so a view handed out earlier never changes under them.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import numpy as np

from tui.logs.batch import MAX_MARKS, ColumnBatch, row_patterns, supersede

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

    def truncate(self, k: int) -> None:
        """Keep the first k values, in a new buffer (views handed out stay as they were)."""
        if k >= self._n:
            return
        buf = np.empty(max(int(k * _GROWTH), _MIN_CAPACITY), self._buf.dtype)
        buf[:k] = self._buf[:k]
        self._buf = buf
        self._n = k

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
        self.last_step: int | None = None  # the step of the last row appended (steps sorted)

    def __len__(self) -> int:
        return len(self.steps)

    def drop_from(self, step: int) -> None:
        """Drop the rows at steps >= step (superseded by a restart): a suffix, steps being
        sorted."""
        k = int(np.searchsorted(self.steps.view(), step, side="left"))
        self.steps.truncate(k)
        self.times.truncate(k)
        for arr in self.values.values():
            arr.truncate(k)

    def append(self, steps: np.ndarray, times: np.ndarray, values: dict[str, np.ndarray]) -> None:
        self.steps.extend(steps)
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
        self._marks: set[Restart] = set(self.restarts)
        self._lock = threading.RLock()

    # -- writing -------------------------------------------------------------------------
    def append(self, batch: ColumnBatch, source: str = "") -> int:
        """Add a reader's new rows; returns the number of points (metric values) added. A
        reset batch first drops everything the source gave before (even with no rows)."""
        n = len(batch)
        with self._lock:
            if batch.reset:
                self.drop_source(source)
            for step, before in batch.restarts:
                self._mark(Restart(source, step, before))
            if n == 0 or not batch.columns:
                return 0
            added = 0
            for keys, idx in row_patterns(batch):
                # one pattern: slices are views, no copy of the batch's columns
                added += self._append_rows(batch, source, keys, idx)
            self.version += 1
            return added

    def drop_source(self, source: str) -> None:
        """Forget every point of one source (its file was truncated or replaced)."""
        with self._lock:
            gone = [g for g in self.groups if g.source == source]
            if not gone:
                return
            self.groups = [g for g in self.groups if g.source != source]
            self._by_key = {k: g for k, g in self._by_key.items() if g.source != source}
            self.restarts = [r for r in self.restarts if r.source != source]
            self._marks = set(self.restarts)
            self._cache.clear()
            self.version += 1

    def _mark(self, mark: Restart) -> None:
        if mark not in self._marks and len(self.restarts) < MAX_MARKS:
            self._marks.add(mark)
            self.restarts.append(mark)

    def _append_rows(
        self, batch: ColumnBatch, source: str, keys: tuple[str, ...], idx: np.ndarray | slice
    ) -> int:
        group = self._by_key.get((source, keys))
        if group is None:
            group = Group(source, keys)
            self._by_key[(source, keys)] = group
            self.groups.append(group)
        steps = batch.steps[idx]
        if steps.shape[0] == 0:
            return 0
        sup = supersede(steps, group.last_step)
        for step, before in sup.marks:
            self._mark(Restart(source, step, before))
        if sup.cut is not None:
            group.drop_from(sup.cut)
        group.last_step = int(steps[-1])
        if sup.keep is not None:
            rows = np.arange(len(batch))[idx] if isinstance(idx, slice) else idx
            idx = rows[sup.keep]
            steps = steps[sup.keep]
        group.append(
            steps,
            batch.times[idx],
            {k: batch.columns[k].values[idx].astype(np.float32, copy=False) for k in keys},
        )
        for k in keys:
            self._cache.pop(k, None)
        if sup.cut is not None:
            self._cache.clear()  # rows dropped: every cached series of the group is stale
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

    @property
    def nbytes(self) -> int:
        return sum(g.nbytes for g in self.groups)

    @property
    def last_step(self) -> int | None:
        """The largest step among the points kept (a restart can lower it)."""
        with self._lock:
            best: int | None = None
            for g in self.groups:
                if len(g):
                    top = int(g.steps.view()[-1])  # a group's steps are sorted
                    if best is None or top > best:
                        best = top
            return best
