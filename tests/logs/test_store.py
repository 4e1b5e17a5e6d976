"""The run store: grouped columns, amortized appends, holes, restarts, memory per point."""

from __future__ import annotations

import numpy as np

from tui.logs.batch import Column, ColumnBatch, concat_batches
from tui.logs.store import GrowableArray, RunStore


def rows(*records: tuple[int, float, dict[str, float]]) -> ColumnBatch:
    return ColumnBatch.from_records(records)


def test_rows_with_the_same_metrics_share_step_and_time_columns() -> None:
    store = RunStore()
    store.append(rows((0, 1.0, {"loss": 2.0, "lr": 0.1}), (1, 2.0, {"loss": 1.5, "lr": 0.1})))
    store.append(rows((1, 2.5, {"val_loss": 1.7})))
    assert len(store.groups) == 2
    train = next(g for g in store.groups if "loss" in g.names)
    assert train.names == ("loss", "lr")
    assert store.series("loss").steps.tolist() == [0, 1]
    assert store.series("val_loss").values.tolist() == [np.float32(1.7)]
    # zero-copy: the series is a view of the group's buffer
    assert np.shares_memory(store.series("loss").steps, train.steps.view())


def test_holes_are_not_points_but_nan_is() -> None:
    batch = ColumnBatch(
        np.array([0, 1, 2]),
        np.full(3, np.nan),
        {
            "loss": Column(np.array([1.0, np.nan, np.inf]), np.array([True, True, True])),
            "val_loss": Column(np.array([0.0, 0.5, 0.0]), np.array([False, True, False])),
        },
    )
    store = RunStore()
    assert store.append(batch) == 4
    loss = store.series("loss")
    assert loss.steps.tolist() == [0, 1, 2]
    assert np.isnan(loss.values[1]) and np.isinf(loss.values[2])
    assert store.series("val_loss").steps.tolist() == [1]


def test_restart_supersedes_points_at_the_same_and_later_steps() -> None:
    store = RunStore()
    store.append(rows(*[(s, float(s), {"loss": 10.0 - s}) for s in range(6)]), "f")
    # the run restarted from a checkpoint at step 3
    store.append(rows(*[(s, 100.0 + s, {"loss": 20.0 - s}) for s in range(3, 8)]), "f")
    loss = store.series("loss")
    assert loss.steps.tolist() == [0, 1, 2, 3, 4, 5, 6, 7]
    assert loss.values.tolist() == [10, 9, 8, 17, 16, 15, 14, 13]
    assert [(r.step, r.previous_max) for r in store.restarts] == [(3, 5)]


def test_a_late_evaluation_row_supersedes_no_training_rows() -> None:
    store = RunStore()
    store.append(rows(*[(s, 0.0, {"loss": 1.0}) for s in range(10)]), "f")
    store.append(rows((5, 0.0, {"val_loss": 0.5}), (10, 0.0, {"loss": 0.9})), "f")
    assert len(store.series("loss")) == 11
    assert store.restarts == []


def test_sources_do_not_restart_each_other() -> None:
    store = RunStore()
    store.append(rows(*[(s, 0.0, {"loss": 1.0}) for s in range(100)]), "train/events")
    store.append(rows(*[(s, 0.0, {"val_loss": 1.0}) for s in range(0, 100, 10)]), "val/events")
    assert store.restarts == []
    assert len(store.series("val_loss")) == 10


def test_lower_priority_source_is_hidden_where_a_better_one_has_the_metric() -> None:
    store = RunStore()
    store.source_priority["hf"] = -1
    store.append(rows((0, 0.0, {"loss": 5.0}), (1, 0.0, {"loss": 4.0})), "hf")
    store.append(rows((0, 0.0, {"loss": 5.0}), (1, 0.0, {"loss": 4.0})), "events")
    store.append(rows((1, 0.0, {"val_loss": 3.0})), "hf")
    assert len(store.series("loss")) == 2  # each point counted once
    assert len(store.series("val_loss")) == 1  # only hf has it


def test_series_merges_groups_in_step_order() -> None:
    store = RunStore()
    store.append(rows((0, 0.0, {"loss": 1.0}), (2, 0.0, {"loss": 0.8, "acc": 0.1})))
    store.append(rows((4, 0.0, {"loss": 0.7}), (6, 0.0, {"loss": 0.6, "acc": 0.3})))
    assert store.series("loss").steps.tolist() == [0, 2, 4, 6]


def test_growable_array_amortized_and_exact() -> None:
    arr = GrowableArray(np.int64)
    reallocations = 0
    last = None
    for i in range(10_000):
        arr.extend(np.array([i]))
        if arr._buf is not last:
            reallocations += 1
            last = arr._buf
    assert arr.view().tolist() == list(range(10_000))
    assert reallocations < 60  # geometric growth: O(log n) copies (1.125^60 > 10^3)


def test_memory_per_point_within_32_bytes() -> None:
    n = 200_000
    steps = np.arange(n, dtype=np.int64)
    cols = {
        k: Column(np.random.default_rng(0).random(n))
        for k in ("loss", "grad_norm", "lr", "clipped")
    }
    store = RunStore()
    for a in range(0, n, 5000):  # appended in chunks, as a live run is
        sl = slice(a, a + 5000)
        store.append(
            ColumnBatch(
                steps[sl],
                steps[sl].astype(float),
                {k: Column(c.values[sl]) for k, c in cols.items()},
            )
        )
    points = 4 * n
    assert store.nbytes / points <= 32
    # the used part alone is 8 bytes per point (16-byte step/time row shared by 4 values)
    used = sum(len(g) * (16 + 4 * len(g.names)) for g in store.groups)
    assert used / points == 8


def test_concat_batches_marks_missing_columns_as_holes() -> None:
    a = rows((0, 0.0, {"loss": 1.0}))
    b = rows((1, 0.0, {"val_loss": 2.0}))
    c = concat_batches([a, b])
    assert c.columns["loss"].present.tolist() == [True, False]
    store = RunStore()
    store.append(c)
    assert store.count("loss") == 1 and store.count("val_loss") == 1


def test_rename_merges_two_names_onto_one() -> None:
    batch = rows((0, 0.0, {"train_loss": 1.0}), (1, 0.0, {"loss": 2.0}))
    merged = batch.rename({"train_loss": "loss"})
    assert list(merged.columns) == ["loss"]
    assert merged.columns["loss"].values.tolist() == [1.0, 2.0]
    assert merged.columns["loss"].present is None


def test_last_step_follows_a_restart_that_went_back() -> None:
    store = RunStore()
    store.append(rows(*[(s, 0.0, {"loss": 1.0}) for s in range(100)]), "f")
    assert store.last_step == 99
    store.append(rows(*[(s, 0.0, {"loss": 1.0}) for s in range(50, 60)]), "f")
    assert store.last_step == 59


# -- the restart rule (issue 14): one rule, superseded rows dropped, resets ---------------------


def naive_survivors(steps: list[int]) -> list[int]:
    """The rule applied row by row, as a person states it: a step below the row before it
    removes every earlier row at the same or a later step; a step equal to the row before it
    replaces that row. Returns the surviving indices."""
    kept: list[int] = []
    for i, s in enumerate(steps):
        if i and s < steps[i - 1]:
            kept = [j for j in kept if steps[j] < s]
        elif i and s == steps[i - 1]:
            kept.pop()
        kept.append(i)
    return kept


def test_supersede_matches_the_rule_row_by_row() -> None:
    from tui.logs.batch import supersede

    rng = np.random.default_rng(7)
    for _ in range(300):
        n = int(rng.integers(1, 60))
        steps = rng.integers(0, 20, n).astype(np.int64)
        sup = supersede(steps)
        kept = np.flatnonzero(sup.keep) if sup.keep is not None else np.arange(n)
        assert kept.tolist() == naive_survivors(steps.tolist()), steps.tolist()


def test_store_equals_the_rule_however_rows_are_batched() -> None:
    """Appending a sequence in random batches, or in one batch after the reader dropped what
    it could (drop_superseded), leaves exactly the rows the rule keeps, in step order."""
    from tui.logs.batch import drop_superseded

    rng = np.random.default_rng(3)
    for _ in range(100):
        n = int(rng.integers(1, 80))
        steps = rng.integers(0, 30, n).astype(np.int64)
        values = np.arange(n, dtype=np.float64)
        want = naive_survivors(steps.tolist())
        store = RunStore()
        a = 0
        while a < n:
            b = min(n, a + int(rng.integers(1, 10)))
            store.append(ColumnBatch(steps[a:b], values[a:b], {"loss": Column(values[a:b])}))
            a = b
        s = store.series("loss")
        assert s.values.tolist() == [float(i) for i in want]
        assert s.steps.tolist() == sorted(s.steps.tolist())
        whole = drop_superseded(ColumnBatch(steps, values, {"loss": Column(values)}))
        other = RunStore()
        other.append(whole)
        assert other.series("loss").values.tolist() == [float(i) for i in want]


def test_superseded_rows_are_dropped_not_kept() -> None:
    """A file that repeats steps 0..999 a hundred times (a restart inside one file) costs the
    memory of one pass."""
    store = RunStore()
    one = np.arange(1000, dtype=np.int64)
    for k in range(100):
        store.append(ColumnBatch(one, one.astype(float), {"loss": Column(np.full(1000, k))}), "f")
    loss = store.series("loss")
    assert loss.steps.tolist() == list(range(1000)) and set(loss.values.tolist()) == {99.0}
    assert store.nbytes < 4 * 1000 * (8 + 8 + 4)  # one pass, with growth headroom
    assert [(r.step, r.previous_max) for r in store.restarts] == [(0, 999)]  # marked once


def test_restart_marks_are_capped() -> None:
    from tui.logs.batch import MAX_MARKS

    store = RunStore()
    steps = np.array([5, 4] * 5000, np.int64)  # a restart on every other row
    store.append(ColumnBatch(steps, np.zeros(10_000), {"loss": Column(np.ones(10_000))}), "f")
    assert len(store.restarts) <= MAX_MARKS
    assert store.series("loss").steps.tolist() == [4]


def test_a_view_handed_out_before_a_restart_never_changes() -> None:
    store = RunStore()
    store.append(rows(*[(s, 0.0, {"loss": float(s)}) for s in range(10)]), "f")
    before = store.series("loss")
    snapshot = before.values.copy()
    store.append(rows(*[(s, 0.0, {"loss": 100.0 + s}) for s in range(3, 20)]), "f")
    assert before.values.tolist() == snapshot.tolist()  # readers on other threads hold views
    assert store.series("loss").values.tolist()[:4] == [0, 1, 2, 103]


def test_reset_drops_every_point_of_that_source_first() -> None:
    """A file truncated and written again by a healthy rerun: none of the old (diverged) points
    survive, not even those past the new last step; other sources are untouched."""
    store = RunStore()
    store.append(rows(*[(s, 0.0, {"loss": float("nan")}) for s in range(100)]), "a")
    store.append(rows(*[(s, 0.0, {"val_loss": 1.0}) for s in range(0, 100, 10)]), "b")
    fresh = rows(*[(s, 0.0, {"loss": 1.0}) for s in range(20)])
    fresh.reset = True
    store.append(fresh, "a")
    loss = store.series("loss")
    assert loss.steps.tolist() == list(range(20)) and not np.isnan(loss.values).any()
    assert len(store.series("val_loss")) == 10
    assert store.last_step == 90
    empty = ColumnBatch.empty()
    empty.reset = True  # truncated to nothing: the points go now, not when new ones come
    store.append(empty, "a")
    assert len(store.series("loss")) == 0


def test_a_step_logged_again_replaces_the_row_before_it() -> None:
    """Two ranks that each append every row (real: rameyjm7/SFT-Training-LLM's LLaMA-Factory
    trainer_log.jsonl, steps 10, 10, 20, 20, ...): one point per step, the value written last
    winning, whether the twin arrives in the same batch or the next; no restart is marked."""
    store = RunStore()
    store.append(
        rows((10, 0.0, {"loss": 0.86}), (10, 0.0, {"loss": 0.85}), (20, 0.0, {"loss": 0.75})), "f"
    )
    store.append(rows((20, 0.0, {"loss": 0.74}), (30, 0.0, {"loss": 0.73})), "f")
    s = store.series("loss")
    assert s.steps.tolist() == [10, 20, 30]
    assert np.allclose(s.values, [0.85, 0.74, 0.73])
    assert store.restarts == []
