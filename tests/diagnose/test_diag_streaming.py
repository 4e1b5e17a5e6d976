"""RunDetectors gives the same findings whether points arrive at once, one by one, or in any
split (DESIGN.md: detectors are streaming objects; issue 3)."""

from __future__ import annotations

import itertools

import numpy as np
from diag_helpers import Rows, make_rows, store_of
from hypothesis import given, settings
from hypothesis import strategies as st

from tui.diagnose.findings import Finding
from tui.diagnose.run_checks import RunDetectors
from tui.logs.batch import ColumnBatch
from tui.logs.store import RunStore

N = 500
ROWS = make_rows(N, seed=3, spikes=(200, 330), warmup=40, val_every=25, clipped=True)
ROWS_NAN = make_rows(N, seed=4, spikes=(150,), nan_from=420, val_every=25)
HP = {"clip_norm": 0.8}


def _split_feed(rows: Rows, cuts: list[int], total: int = N) -> tuple[list[Finding], list[Finding]]:
    """Feed the rows in pieces cut at `cuts`; returns (final findings, all returned by update)."""
    store = RunStore()
    det = RunDetectors(total, HP)
    returned: list[Finding] = []
    bounds = [0, *sorted(set(c for c in cuts if 0 < c < len(rows))), len(rows)]
    for a, b in itertools.pairwise(bounds):
        store.append(ColumnBatch.from_records(rows[a:b]))
        returned += det.update(store)
    return det.findings, returned


def _at_once(rows: Rows, total: int = N) -> list[Finding]:
    det = RunDetectors(total, HP)
    det.update(store_of(rows))
    return det.findings


def test_at_once_finds_the_spikes_and_more() -> None:
    kinds = [f.kind for f in _at_once(ROWS)]
    assert kinds.count("loss_spike") == 2
    assert "warmup_too_long" in kinds
    assert "clipping_too_aggressive" in kinds


def test_one_by_one_equals_at_once() -> None:
    for rows in (ROWS, ROWS_NAN):
        final, returned = _split_feed(rows, list(range(len(rows))))
        assert final == _at_once(rows)
        # every final finding was returned by some update (replacements included)
        assert all(f in returned for f in final)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(ROWS) - 1), max_size=12))
def test_random_splits_equal_at_once(cuts: list[int]) -> None:
    assert _split_feed(ROWS, cuts)[0] == _at_once(ROWS)


@settings(max_examples=15, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(ROWS_NAN) - 1), max_size=8))
def test_random_splits_equal_at_once_diverging(cuts: list[int]) -> None:
    assert _split_feed(ROWS_NAN, cuts)[0] == _at_once(ROWS_NAN)


def test_update_returns_only_new_findings() -> None:
    store = RunStore()
    det = RunDetectors(N, {})
    store.append(ColumnBatch.from_records(ROWS[:260]))
    first = det.update(store)
    assert [f.kind for f in first].count("loss_spike") == 1
    assert det.update(store) == []  # nothing new, nothing returned
    store.append(ColumnBatch.from_records(ROWS[260:]))
    second = det.update(store)
    assert [f.kind for f in second].count("loss_spike") == 1
    assert second[0] not in first


def test_restart_resets_and_reconsumes() -> None:
    store = RunStore()
    det = RunDetectors(N, {})
    store.append(ColumnBatch.from_records(ROWS[:400]))
    det.update(store)
    # the run restarts from a checkpoint at step 100 and logs clean points from there
    clean = make_rows(N, seed=9, clipped=True)
    store.append(ColumnBatch.from_records([r for r in clean[100:300] if "val_loss" not in r[2]]))
    assert store.restarts
    det.update(store)
    fresh = RunDetectors(N, {})
    fresh.update(store)
    assert det.findings == fresh.findings


def test_set_total_steps_recomputes() -> None:
    store = store_of(ROWS)
    det = RunDetectors(0, HP)
    det.update(store)
    det.set_total_steps(N * 10)
    det.update(store)
    assert det.findings == _at_once(ROWS, N * 10)


def test_no_finding_on_the_first_points() -> None:
    rows = make_rows(N, seed=5)
    for k in (1, 2, 5, 10, 20, 31):
        det = RunDetectors(N, {})
        det.update(store_of(rows[:k]))
        assert det.findings == []
    # even wild first points
    wild = [(i, float(i), {"loss": float(v)}) for i, v in enumerate([5, 1, 9, 0.5, 7, 0.1] * 5)]
    det = RunDetectors(N, {})
    det.update(store_of(wild))
    assert [f.kind for f in det.findings] == []


def test_stats_p90_and_fractions() -> None:
    det = RunDetectors(N, HP)
    det.update(store_of(ROWS))
    s = det.stats()
    g = np.array([r[2]["grad_norm"] for r in ROWS if "grad_norm" in r[2]])
    assert abs(s["p90"] - np.percentile(g, 90)) < 1e-5
    assert abs(s["fraction_above_p90"] - 0.1) < 0.01
    assert abs(s["fraction_clipped"] - (g > 0.8).mean()) < 0.01
    assert abs(s["fraction_above_clip_norm"] - (g > 0.8).mean()) < 0.01


def test_stats_are_recomputed_as_the_series_grows_by_a_percent() -> None:
    """stats() is O(n); past STATS_EXACT points it is recomputed once the series grew by 1%
    (the dashboard asks every round): exact then, unchanged in between."""
    from tui.diagnose.gradnorm import clip_stats
    from tui.diagnose.run_checks import STATS_EXACT, STATS_GROWTH

    n = STATS_EXACT  # grad_norm and clipped: 2n points
    rng = np.random.default_rng(0)

    def rows(a: int, b: int, scale: float) -> Rows:
        g = scale * np.exp(rng.normal(size=b - a))
        return [
            (i, float(i), {"grad_norm": float(v), "clipped": float(v > 1.0)})
            for i, v in zip(range(a, b), g, strict=True)
        ]

    store, det = RunStore(), RunDetectors(0, {"clip_norm": 1.0})
    store.append(ColumnBatch.from_records(rows(0, n, 1.0)))
    det.update(store)
    first = det.stats()
    assert first == clip_stats(store, 1.0)
    little = int(n * (STATS_GROWTH - 1)) // 2  # +0.5%: far larger norms, not counted yet
    store.append(ColumnBatch.from_records(rows(n, n + little, 100.0)))
    det.update(store)
    assert det.stats() == first != clip_stats(store, 1.0)
    store.append(ColumnBatch.from_records(rows(n + little, n + 2 * little + 2, 100.0)))
    det.update(store)
    assert det.stats() == clip_stats(store, 1.0) != first
