"""JsonlReader: files written by Python's json, damage of every kind, files changing under it."""

from __future__ import annotations

import itertools
import json
import math
import os
import threading
from pathlib import Path

import numpy as np
from conftest_text import Collector, Row, expected_row, read_locked, rows_of, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui.logs.jsonl import JsonlReader

T0 = 1_795_517_490.0


def runner_records(n: int, eval_every: int = 5) -> list[dict[str, object]]:
    """What the runner writes: a training row per step, an evaluation row every few steps."""
    out: list[dict[str, object]] = []
    for s in range(n):
        out.append({"step": s, "time": T0 + s, "loss": 2.0 / (s + 1), "grad_norm": 1.5, "lr": 1e-3})
        if s % eval_every == eval_every - 1:
            out.append({"step": s, "time": T0 + s + 0.5, "val_loss": 1.0 + s / 100})
    return out


def dump(records: list[dict[str, object]]) -> str:
    return "".join(json.dumps(r) + "\n" for r in records)


def expected(records: list[dict[str, object]]) -> list[Row]:
    return [expected_row(int(r["step"]), r, skip=("step", "time")) for r in records]  # type: ignore[arg-type]


def test_runner_style_file(tmp_path: Path) -> None:
    path = tmp_path / "metrics.jsonl"
    recs = runner_records(20)
    write(path, dump(recs))
    res = JsonlReader(path).read()
    assert res.errors == [] and not res.reset
    assert rows_of(res.batch) == expected(recs)
    assert res.batch.times.tolist() == [r["time"] for r in recs]
    # evaluation rows are holes in loss, training rows holes in val_loss
    loss = res.batch.columns["loss"]
    assert loss.present is not None and int(loss.present.sum()) == 20
    assert set(res.batch.columns) == {"loss", "grad_norm", "lr", "val_loss"}


def test_python_nonfinite_tokens_and_null(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    recs: list[dict[str, object]] = [
        {"step": 0, "loss": 1.0, "grad_norm": None},
        {"step": 1, "loss": float("nan"), "grad_norm": float("inf")},
        {"step": 2, "loss": -float("inf"), "grad_norm": 3.0},
        {"step": 3, "isNaN": 1, "Infinity_count": 2, "note": "NaN Infinity"},
    ]
    text = dump(recs)
    assert "NaN" in text and "-Infinity" in text  # what Python's json writes
    write(path, text)
    res = JsonlReader(path).read()
    assert res.errors == []
    b = res.batch
    loss = b.columns["loss"]
    assert loss.values[0] == 1.0 and math.isnan(loss.values[1]) and loss.values[2] == -np.inf
    assert loss.present is not None and loss.present.tolist() == [True, True, True, False]
    gn = b.columns["grad_norm"]
    assert gn.present is not None and gn.present.tolist() == [False, True, True, False]
    assert gn.values[1] == np.inf
    # a key holding the word keeps its name; the string value is not a metric
    assert b.columns["isNaN"].values[3] == 1.0
    assert b.columns["Infinity_count"].values[3] == 2.0
    assert "note" not in b.columns


def test_step_and_time_keys(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    lines = [
        {"global_step": 10, "timestamp": T0, "a": 1},
        {"iteration": 11, "wall_time": T0 + 1, "a": 2},
        {"trainer/global_step": 12, "_timestamp": T0 + 2, "a": 3},
        {"step": 13, "global_step": 99, "a": 4},  # `step` wins
        {"val_a": 5},  # no step: the row before's step (an eval row logged at that step)
    ]
    write(path, dump(lines))
    b = JsonlReader(path).read().batch
    assert b.steps.tolist() == [10, 11, 12, 13, 13]
    assert b.times[:3].tolist() == [T0, T0 + 1, T0 + 2] and np.isnan(b.times[3:]).all()
    assert set(b.columns) == {"a", "val_a"}  # step and time fields are not metrics


def test_no_step_at_all_counts_rows_across_reads(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    reader = JsonlReader(path)
    write(path, '{"loss": 1}\n{"loss": 2}\n')
    assert reader.read().batch.steps.tolist() == [0, 1]
    write(path, '{"loss": 3}\n')
    assert reader.read().batch.steps.tolist() == [2]


def test_bools_are_values_nested_and_lists_are_not(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    write(path, '{"step": 1, "clipped": true, "h": [1, 2], "d": {"x": 1}, "s": "x"}\n')
    b = JsonlReader(path).read().batch
    assert set(b.columns) == {"clipped"} and b.columns["clipped"].values.tolist() == [1.0]


def test_huge_integer_and_type_change_fall_back_per_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    write(
        path,
        '{"step": 0, "seed": 123456789012345678901234567890, "loss": 1}\n'
        '{"step": 1, "x": 1, "loss": 2}\n{"step": 2, "x": "text", "loss": 3}\n',
    )
    res = JsonlReader(path).read()
    assert res.errors == []
    assert res.batch.columns["loss"].values.tolist() == [1.0, 2.0, 3.0]
    x = res.batch.columns["x"]
    assert x.present is not None and x.present.tolist() == [False, True, False]


def test_partial_last_line_waits_for_newline(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    reader = JsonlReader(path)
    write(path, '{"step": 0, "loss": 1}\n{"step": 1, "lo')
    assert reader.read().batch.steps.tolist() == [0]
    assert len(reader.read().batch) == 0
    write(path, 'ss": 2}')
    assert len(reader.read().batch) == 0  # still no newline
    write(path, "\n")
    res = reader.read()
    assert res.errors == [] and rows_of(res.batch) == [(1, {"loss": "2.0"})]


def test_damage_keeps_every_good_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    good = runner_records(10, eval_every=3)
    bad = [
        b"garbage line\n",
        b'{"step": 99, "loss": \xff\xfe}\n',  # bad UTF-8
        b'{"step": 98, "note": "\xc3\x28"}\n',  # bad UTF-8 inside a string
        b"[1, 2, 3]\n",  # JSON, but no object
        b"42\n",
        b'{"step": 97, "loss": 1.0\n',  # truncated record, then a newline
        b"\n   \n",  # blank lines: not errors
    ]
    data = b"".join(
        json.dumps(r).encode() + b"\n" + (bad[i] if i < len(bad) else b"")
        for i, r in enumerate(good)
    )
    write(path, data)
    res = JsonlReader(path).read()
    assert rows_of(res.batch) == expected(good)
    assert 1 <= len(res.errors) <= 6
    assert all(str(path) in e for e in res.errors)


def test_many_garbage_lines_are_rate_limited(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    write(path, '{"step": 0, "loss": 1}\n' + "x\n" * 10_000 + '{"step": 1, "loss": 2}\n')
    res = JsonlReader(path).read()
    assert res.batch.steps.tolist() == [0, 1]
    assert len(res.errors) <= 6 and "9995 more" in res.errors[-1]


def test_large_read_with_one_bad_line_keeps_the_rest(tmp_path: Path) -> None:
    # several MiB: the fast path fails as a whole, the retry in blocks keeps all good lines
    path = tmp_path / "m.jsonl"
    recs = runner_records(40_000, eval_every=100)
    text = dump(recs)
    mid = text.index("\n", len(text) // 2) + 1
    write(path, text[:mid] + "{broken\n" + text[mid:])
    res = JsonlReader(path).read()
    assert len(res.errors) == 1 and "not valid JSON" in res.errors[0]
    assert len(res.batch) == len(recs)
    assert res.batch.steps.tolist() == [r["step"] for r in recs]


def test_nul_blocks(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    write(path, '{"step": 0, "loss": 1}\n')
    write(path, b"\x00" * 4096)  # NFS: a zero-filled block, then the writer goes on
    write(path, '{"step": 1, "loss": 2}\n' + "\x00" * 100 + "\n" + '{"step": 2, "loss": 3}\n')
    res = JsonlReader(path).read()
    assert res.batch.steps.tolist() == [0, 1, 2]
    assert len(res.errors) == 1 and "NUL" in res.errors[0]


def test_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"")
    res = JsonlReader(path).read()
    assert len(res.batch) == 0 and res.errors == [] and not res.reset


def test_shrink_resets_and_rereads(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    c = Collector(JsonlReader(path))
    write(path, dump(runner_records(10)))
    c.read()
    with open(path, "r+b") as fh:  # truncate -s 0, then a new run writes
        fh.truncate(0)
    write(path, '{"step": 0, "loss": 5}\n')
    res = c.read()
    assert res.reset and c.rows == [(0, {"loss": "5.0"})]


def test_replaced_by_new_inode(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    c = Collector(JsonlReader(path))
    write(path, dump(runner_records(3)))
    c.read()
    tmp = tmp_path / "m.jsonl.tmp"
    recs = runner_records(8)  # longer: only the inode says it is another file
    write(tmp, dump(recs))
    os.replace(tmp, path)
    res = c.read()
    assert res.reset and c.rows == expected(recs)


def test_deleted_then_recreated(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    c = Collector(JsonlReader(path))
    write(path, dump(runner_records(3)))
    c.read()
    kept = list(c.rows)
    path.unlink()
    res = c.read()  # no exception
    assert len(res.errors) == 1 and "not found" in res.errors[0]
    assert c.read().errors == []  # reported once, not at every poll
    assert c.rows == kept  # what was read stays
    write(path, '{"step": 0, "loss": 9}\n')
    res = c.read()
    assert res.reset and c.rows == [(0, {"loss": "9.0"})]


def test_path_is_a_directory(tmp_path: Path) -> None:
    res = JsonlReader(tmp_path).read()
    assert len(res.batch) == 0 and len(res.errors) == 1


def test_folder_without_read_permission(tmp_path: Path) -> None:
    folder = tmp_path / "locked"
    folder.mkdir()
    path = folder / "m.jsonl"
    write(path, dump(runner_records(3)))
    n, errors = read_locked(folder, lambda: JsonlReader(path))
    assert n == 0 and len(errors) == 1


def test_append_while_reading(tmp_path: Path) -> None:
    """A writer thread appends (in pieces that split lines) while the reader polls; after the
    writer is done and one last read, every record arrived exactly once, in order."""
    path = tmp_path / "m.jsonl"
    path.write_bytes(b"")
    recs = runner_records(3000, eval_every=7)
    data = dump(recs).encode()
    reader = JsonlReader(path)
    rows: list[Row] = []

    def writer() -> None:
        with open(path, "ab") as fh:
            for i in range(0, len(data), 777):
                fh.write(data[i : i + 777])
                fh.flush()

    t = threading.Thread(target=writer)
    t.start()
    while t.is_alive():
        res = reader.read()
        assert res.errors == [] and not res.reset
        rows.extend(rows_of(res.batch))
    t.join()
    rows.extend(rows_of(reader.read().batch))
    assert rows == expected(recs)


_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
)
_record = st.fixed_dictionaries(
    {"step": st.integers(0, 10**6)},
    optional={"loss": _value, "val_loss": _value, "lr": _value, "NaN": _value},
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(records=st.lists(_record, max_size=25), cuts=st.lists(st.integers(0, 10**6), max_size=12))
def test_split_at_random_byte_boundaries(
    tmp_path_factory: object, records: list[dict[str, object]], cuts: list[int]
) -> None:
    """A valid file appended in random pieces yields exactly the whole file's records."""
    folder = tmp_path_factory.mktemp("split")  # type: ignore[attr-defined]
    path = folder / "m.jsonl"
    data = dump(records).encode()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    path.write_bytes(b"")
    c = Collector(JsonlReader(path))
    for a, b in itertools.pairwise(points):
        write(path, data[a:b])
        c.read()
    c.read()
    assert c.errors == [] and c.resets == 0
    assert c.rows == expected(records)
    # and the same as one read of the whole file
    assert rows_of(JsonlReader(path).read().batch) == c.rows


# -- hostile input (issue 14) -------------------------------------------------------------------
def test_deeply_nested_line_is_one_skipped_line(tmp_path: Path) -> None:
    path = tmp_path / "m.jsonl"
    deep = "[" * 100_000 + "]" * 100_000
    write(path, '{"step": 0, "loss": 1}\n' + deep + "\n" + '{"step": 1, "loss": 2}\n')
    res = JsonlReader(path).read()
    assert res.batch.steps.tolist() == [0, 1]
    assert len(res.errors) == 1 and "byte 23" in res.errors[0]


def test_sparse_file_then_real_lines(tmp_path: Path) -> None:
    """`truncate -s` (64 MiB here; the 5 GB case is in the slow tests) then a few real lines:
    the lines are read, the zeros are one error entry."""
    path = tmp_path / "m.jsonl"
    with open(path, "wb") as fh:
        fh.truncate(64 << 20)
    write(path, '{"step": 7, "loss": 1}\n{"step": 8, "loss": 2}\n')
    res = JsonlReader(path).read()
    assert res.batch.steps.tolist() == [7, 8]
    assert len(res.errors) == 1 and f"{64 << 20} NUL bytes" in res.errors[0]


def test_a_read_spans_many_windows(tmp_path: Path, monkeypatch) -> None:
    import tui.logs.tail as tail

    monkeypatch.setattr(tail, "WINDOW", 4096)
    monkeypatch.setattr(tail.FileTail.lines, "__defaults__", (4096,))
    path = tmp_path / "m.jsonl"
    write(path, "".join(json.dumps({"step": s, "loss": 1.0 / (s + 1)}) + "\n" for s in range(5000)))
    res = JsonlReader(path).read()
    assert res.batch.steps.tolist() == list(range(5000)) and not res.errors


def test_truncated_and_rewritten_file_leaves_no_stale_point(tmp_path: Path) -> None:
    """A diverged run's metrics.jsonl truncated and written again by a healthy rerun: the live
    store shows the rerun only, not the old NaNs past its last step (issue 14, item 10)."""
    from tui.logs.workspace import Workspace

    run = tmp_path / "r"
    run.mkdir()
    path = run / "metrics.jsonl"
    write(path, "".join(f'{{"step": {s}, "loss": NaN}}\n' for s in range(100)))
    ws = Workspace([tmp_path])
    ws.refresh()
    assert len(ws.runs["r"].store.series("loss")) == 100
    os.truncate(path, 0)
    write(path, "".join(f'{{"step": {s}, "loss": 1.0}}\n' for s in range(30)))
    ws.poll()
    loss = ws.runs["r"].store.series("loss")
    assert loss.steps.tolist() == list(range(30)) and not np.isnan(loss.values).any()
    ws.close()


def test_the_restart_rule_is_the_same_in_every_format(tmp_path: Path) -> None:
    """The same restarted run (steps 0..99, then 60..119 again) logged as JSONL, CSV and by
    torch's SummaryWriter: the three stores hold the same points and the same restart."""
    import pytest

    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    from tui.logs.csvlog import CsvReader
    from tui.logs.store import RunStore
    from tui.logs.tfevents import TfEventsReader

    seq = [(s, float(s)) for s in range(100)] + [(s, 1000.0 + s) for s in range(60, 120)]
    j = tmp_path / "m.jsonl"
    write(j, "".join(json.dumps({"step": s, "loss": v}) + "\n" for s, v in seq))
    c = tmp_path / "m.csv"
    write(c, "step,loss\n" + "".join(f"{s},{v}\n" for s, v in seq))
    tb = tmp_path / "tb"
    w = SummaryWriter(str(tb))
    for s, v in seq:
        w.add_scalar("loss", v, s)
    w.close()
    (e,) = list(tb.glob("events.out.tfevents.*"))
    got = []
    for reader in (JsonlReader(j), CsvReader(c), TfEventsReader(e)):
        store = RunStore()
        store.append(reader.read().batch, "f")
        s = store.series("loss")
        got.append(
            (
                s.steps.tolist(),
                s.values.tolist(),
                [(r.step, r.previous_max) for r in store.restarts],
            )
        )
    want = (
        list(range(120)),
        [float(s) for s in range(60)] + [1000.0 + s for s in range(60, 120)],
        [(60, 99)],
    )
    assert got == [want, want, want]
