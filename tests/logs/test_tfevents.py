"""TfEventsReader: files from the real writers, damage, changes under the reader, and the
vectorised fast path checked against tensorboard's own protobuf parser and EventAccumulator."""

from __future__ import annotations

import math
import os
import struct
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

from tui.logs import tfrecord as tr
from tui.logs.batch import ColumnBatch
from tui.logs.reader import ReadResult
from tui.logs.tfevents import TfEventsReader

Points = dict[str, list[tuple[int, float]]]
FIXTURE = HealthCheck.function_scoped_fixture  # tmp_path is reused across examples: fine here


# -- helpers ---------------------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def points(batch: ColumnBatch) -> Points:
    """tag -> [(step, value)] in row order."""
    out: Points = {}
    for name, col in batch.columns.items():
        rows = range(len(batch)) if col.present is None else np.flatnonzero(col.present)
        out[name] = [(int(batch.steps[i]), float(col.values[i])) for i in rows]
    return out


def merge(into: Points, more: Points) -> Points:
    for k, v in more.items():
        into.setdefault(k, []).extend(v)
    return into


def same(a: Points, b: Points) -> bool:
    """Equal, NaN equal to NaN."""
    if set(a) != set(b):
        return False
    for k in a:
        if len(a[k]) != len(b[k]):
            return False
        for (s1, v1), (s2, v2) in zip(a[k], b[k], strict=True):
            if s1 != s2 or not (v1 == v2 or (math.isnan(v1) and math.isnan(v2))):
                return False
    return True


def read_all(path: Path, **kw: object) -> tuple[ReadResult, Points]:
    res = TfEventsReader(path, **kw).read()  # type: ignore[arg-type]
    return res, points(res.batch)


def event_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if "tfevents" in p.name and p.is_file())


def ea_points(path: Path) -> tuple[Points, dict[str, list[float]]]:
    """Scalars of one event file as TensorBoard's EventAccumulator sees them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ea = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    ea.Reload()
    out: Points = {}
    times: dict[str, list[float]] = {}
    for tag in ea.Tags()["scalars"]:
        evs = ea.Scalars(tag)
        out[tag] = [(e.step, float(e.value)) for e in evs]
        times[tag] = [e.wall_time for e in evs]
    return out, times


def assert_like_ea(path: Path) -> Points:
    """The reader gives exactly EventAccumulator's simple_value scalars (steps, values, and
    times), and no errors."""
    res, got = read_all(path)
    assert res.errors == []
    want, want_times = ea_points(path)
    assert same(got, want), (got, want)
    for tag, ts in want_times.items():
        col = res.batch.columns[tag]
        rows = range(len(res.batch)) if col.present is None else np.flatnonzero(col.present)
        # a row's time is its first event's: equal here, as each step's scalars share a time
        # only when written together; compare per point where the row holds one tag's time
        assert len(ts) == len(list(rows))
    return got


def scalar_event(tag: str, value: float, step: int, wall: float = 1.7e9) -> bytes:
    ev = event_pb2.Event(wall_time=wall, step=step)
    ev.summary.value.add(tag=tag, simple_value=value)
    return ev.SerializeToString()


def tensor_event(
    tag: str,
    value: float,
    step: int,
    dtype: int = types_pb2.DT_FLOAT,
    *,
    meta: bool = True,
    content: bool = False,
    wall: float = 1.7e9,
) -> bytes:
    t = tensor_pb2.TensorProto(dtype=dtype)
    np_dtype = {types_pb2.DT_FLOAT: "<f4", types_pb2.DT_DOUBLE: "<f8", types_pb2.DT_HALF: "<f2"}
    if content:
        t.tensor_content = np.array([value], np_dtype[dtype]).tobytes()
    elif dtype == types_pb2.DT_FLOAT:
        t.float_val.append(value)
    elif dtype == types_pb2.DT_DOUBLE:
        t.double_val.append(value)
    elif dtype == types_pb2.DT_HALF:
        with np.errstate(over="ignore"):  # a float32 beyond half's range becomes inf
            t.half_val.append(int(np.array([value], np.float16).view(np.uint16)[0]))
    v = summary_pb2.Summary.Value(tag=tag, tensor=t)
    if meta:
        v.metadata.plugin_data.plugin_name = "scalars"
    ev = event_pb2.Event(wall_time=wall, step=step)
    ev.summary.value.append(v)
    return ev.SerializeToString()


def file_version() -> bytes:
    return event_pb2.Event(wall_time=1.7e9, file_version="brain.Event:2").SerializeToString()


def write(path: Path, records: Iterable[bytes], mode: str = "wb") -> list[int]:
    """Frame and write records; returns each record's offset in the file."""
    offsets = []
    with open(path, mode) as fh:
        for data in records:
            offsets.append(fh.tell())
            fh.write(tr.frame_record(data))
    return offsets


def append_raw(path: Path, data: bytes) -> int:
    """Append bytes as they are (no framing); returns the offset they start at."""
    with open(path, "ab") as fh:
        at = fh.tell()
        fh.write(data)
    return at


def overwrite(path: Path, offset: int, data: bytes) -> None:
    """Write bytes in place at `offset` (same inode): data landing over NFS zeros."""
    with open(path, "r+b") as fh:
        fh.seek(offset)
        fh.write(data)


def steps_file(path: Path, n: int, start: int = 0) -> list[int]:
    recs = [file_version()] if start == 0 else []
    for s in range(start, start + n):
        recs += [scalar_event("loss", 1.0 / (s + 1), s), scalar_event("lr", 0.1, s)]
    return write(path, recs, "wb" if start == 0 else "ab")


def expected_steps(start: int, n: int) -> Points:
    return {
        "loss": [(s, float(np.float32(1.0 / (s + 1)))) for s in range(start, start + n)],
        "lr": [(s, float(np.float32(0.1))) for s in range(start, start + n)],
    }


# -- the real writers ------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def _quiet_tb(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")


def test_torch_add_scalar_and_skipped_summaries(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path))
    for s in range(60):
        w.add_scalar("train/loss", 2.0 / (s + 1), s)
        w.add_scalar("train/lr", 1e-3, s)
        if s % 10 == 9:
            w.add_scalar("val/loss", 1.0 / (s + 1), s)
            w.add_histogram("weights", torch.randn(100), s)
            w.add_text("note", f"step {s}", s)
            w.add_image("img", torch.rand(3, 8, 8), s)
    w.add_scalar("div", float("nan"), 60)
    w.add_scalar("div", float("inf"), 61)
    w.add_scalar("div", float("-inf"), 62)
    w.close()
    (path,) = event_files(tmp_path)
    got = assert_like_ea(path)
    assert set(got) == {"train/loss", "train/lr", "val/loss", "div"}
    assert len(got["train/loss"]) == 60 and len(got["val/loss"]) == 6
    # pivoted: a step's scalars share one row
    res, _ = read_all(path)
    assert len(res.batch) == 63
    assert res.batch.steps.dtype == np.int64
    div = got["div"]
    assert math.isnan(div[0][1]) and div[1][1] == math.inf and div[2][1] == -math.inf


def test_torch_add_scalars_subfolders(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path))
    for s in range(25):
        w.add_scalars("loss", {"train": 1.0 / (s + 1), "val": 2.0 / (s + 1)}, s)
    w.close()
    files = event_files(tmp_path)
    folders = {p.parent.name for p in files}
    assert {"loss_train", "loss_val"} <= folders
    for p in files:
        got = assert_like_ea(p)
        if p.parent.name in ("loss_train", "loss_val"):
            assert list(got) == ["loss"] and len(got["loss"]) == 25


def test_tensorboardx_add_scalar_and_add_scalars(tmp_path: Path) -> None:
    tbx = pytest.importorskip("tensorboardX")
    w = tbx.SummaryWriter(str(tmp_path))
    for s in range(30):
        w.add_scalar("loss", 1.0 / (s + 1), s)
        w.add_scalars("acc", {"train": s / 30, "val": s / 40}, s)
    w.add_scalar("loss", float("nan"), 30)
    w.close()
    files = event_files(tmp_path)
    rel = {str(p.parent.relative_to(tmp_path)) for p in files}
    assert {"acc/train", "acc/val"} <= rel
    total = 0
    for p in files:
        got = assert_like_ea(p)
        total += sum(len(v) for v in got.values())
    assert total == 31 + 60


def test_new_style_tensor_scalars_from_writers(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from tensorboard.summary import Writer
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path / "torch"))
    for s in range(10):
        w.add_scalar("f32", s * 0.5, s, new_style=True)
        w.add_scalar("f64", s * 0.25, s, new_style=True, double_precision=True)
    w.close()
    (path,) = event_files(tmp_path / "torch")
    res, got = read_all(path)
    assert res.errors == []
    assert got["f32"] == [(s, s * 0.5) for s in range(10)]
    assert got["f64"] == [(s, s * 0.25) for s in range(10)]
    assert len(res.batch) == 10

    tw = Writer(str(tmp_path / "tb"))
    for s in range(7):
        tw.add_scalar("loss", 3.0 - s, s)
    tw.close()
    (path,) = event_files(tmp_path / "tb")
    res, got = read_all(path)
    assert res.errors == [] and got == {"loss": [(s, 3.0 - s) for s in range(7)]}


def test_new_style_scalars_take_the_fast_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After a tag's first chunk (protobuf learns its plugin), its tensor scalars are decoded
    vectorised, with and without metadata, float and double, with and without a shape."""
    from tensorboard.summary import Writer

    tw = Writer(str(tmp_path))  # tensorboard's own writer: shape 12 00, data_class 20 01
    for s in range(300):
        tw.add_scalar("loss", 1.0 / (s + 1), s, wall_time=1.7e9 + s)
    tw.close()
    (tb_file,) = event_files(tmp_path)
    path = tmp_path / "events.out.tfevents.2.host"
    recs = [file_version()]
    for s in range(300):
        recs.append(tensor_event("a", s * 0.5, s, meta=s % 2 == 0))
        recs.append(tensor_event("b", s * 0.25, s, types_pb2.DT_DOUBLE, meta=s == 0))
    write(path, recs)
    import tui.logs.tfevents as mod

    calls = 0
    real = mod.event_pb2.Event.FromString

    class Counting:
        class Event:
            @staticmethod
            def FromString(data: bytes) -> event_pb2.Event:
                nonlocal calls
                calls += 1
                return real(data)

    monkeypatch.setattr(mod, "event_pb2", Counting)
    for f, n_records in ((tb_file, 301), (path, 601)):
        calls = 0
        res = TfEventsReader(f, chunk_size=4096).read()
        assert res.errors == []
        assert calls < n_records // 4, (f, calls)  # most records never saw protobuf
        monkeypatch.setattr(mod, "event_pb2", event_pb2)
        slow = ProtobufOnly(f).read()
        monkeypatch.setattr(mod, "event_pb2", Counting)
        assert same(points(res.batch), points(slow.batch))
        assert np.array_equal(res.batch.times, slow.batch.times)
    assert points(res.batch)["b"][:3] == [(0, 0.0), (1, 0.25), (2, 0.5)]


def test_tensor_scalar_encodings_and_metadata_once(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    write(
        path,
        [
            file_version(),
            tensor_event("a", 1.5, 0),
            tensor_event("a", 2.5, 1, meta=False),  # TF writes the plugin only once per tag
            tensor_event("b", 0.25, 1, types_pb2.DT_DOUBLE),
            tensor_event("c", 0.5, 1, types_pb2.DT_HALF),
            tensor_event("d", 4.0, 1, content=True),
            tensor_event("e", 8.0, 1, types_pb2.DT_DOUBLE, content=True),
            tensor_event("f", 1.0, 1, meta=False),  # no plugin ever: not a scalar
        ],
    )
    res, got = read_all(path)
    assert res.errors == []
    assert got == {
        "a": [(0, 1.5), (1, 2.5)],
        "b": [(1, 0.25)],
        "c": [(1, 0.5)],
        "d": [(1, 4.0)],
        "e": [(1, 8.0)],
    }


def test_non_scalar_plugins_and_vectors_are_skipped(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    vec = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT)
    vec.tensor_shape.dim.add(size=2)
    vec.float_val.extend([1.0, 2.0])
    ev = event_pb2.Event(wall_time=1.0, step=1)
    v = ev.summary.value.add(tag="vec", tensor=vec)
    v.metadata.plugin_data.plugin_name = "scalars"
    txt = event_pb2.Event(wall_time=1.0, step=1)
    t = txt.summary.value.add(tag="text", tensor=tensor_pb2.TensorProto(dtype=types_pb2.DT_STRING))
    t.metadata.plugin_data.plugin_name = "text"
    odd = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, tensor_content=b"\x00\x00\x80")
    torn = event_pb2.Event(wall_time=1.0, step=2)
    v = torn.summary.value.add(tag="torn", tensor=odd)
    v.metadata.plugin_data.plugin_name = "scalars"
    graph = event_pb2.Event(wall_time=1.0, graph_def=b"\x00\x01")
    write(
        path,
        [
            ev.SerializeToString(),
            txt.SerializeToString(),
            torn.SerializeToString(),
            graph.SerializeToString(),
        ],
    )
    res, got = read_all(path)
    assert res.errors == [] and got == {}


def test_several_values_in_one_event(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    ev = event_pb2.Event(wall_time=1.0, step=5)
    ev.summary.value.add(tag="x", simple_value=1.0)
    ev.summary.value.add(tag="y", simple_value=2.0)
    write(path, [scalar_event("x", 0.0, 4), ev.SerializeToString(), scalar_event("x", 3.0, 6)])
    res, got = read_all(path)
    assert got == {"x": [(4, 0.0), (5, 1.0), (6, 3.0)], "y": [(5, 2.0)]}
    assert list(res.batch.steps) == [4, 5, 6]


def test_several_files_in_one_folder(tmp_path: Path) -> None:
    a = tmp_path / "events.out.tfevents.1.host.1.0"
    b = tmp_path / "events.out.tfevents.2.host.2.0"
    steps_file(a, 5)
    steps_file(b, 5)
    steps_file(b, 5, start=5)  # the restarted writer's file goes on
    assert same(read_all(a)[1], expected_steps(0, 5))
    assert same(read_all(b)[1], expected_steps(0, 10))


# -- pivoting --------------------------------------------------------------------------------
def test_rows_pivot_by_step_and_repeats(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    write(
        path,
        [
            scalar_event("a", 1, 1, wall=10),
            scalar_event("b", 2, 1, wall=11),
            scalar_event("a", 3, 2, wall=12),
            scalar_event("a", 4, 2, wall=13),  # a repeats at step 2: new row
            scalar_event("b", 5, 2, wall=14),
            scalar_event("b", 6, 1, wall=15),  # step goes back: new row
        ],
    )
    res, _ = read_all(path)
    b = res.batch
    assert list(b.steps) == [1, 2, 2, 1]
    assert list(b.times) == [10, 12, 13, 15]
    a_col, b_col = b.columns["a"], b.columns["b"]
    assert list(b.columns) == ["a", "b"]
    assert a_col.present is not None and list(a_col.present) == [True, True, True, False]
    assert list(a_col.values[:3]) == [1, 3, 4]
    assert b_col.present is not None and list(b_col.present) == [True, False, True, True]
    assert [b_col.values[i] for i in (0, 2, 3)] == [2, 5, 6]


def test_step_zero_and_wide_steps(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    steps = [0, 1, 127, 128, 16383, 16384, 2**28, 2**35, 2**40, -5]
    write(path, [scalar_event("x", float(i), s) for i, s in enumerate(steps)])
    res, got = read_all(path)
    assert res.errors == []
    assert got == {"x": [(s, float(i)) for i, s in enumerate(steps)]}


# -- incremental reading ---------------------------------------------------------------------
def test_appends_while_reading_real_writer(tmp_path: Path) -> None:
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    w = SummaryWriter(str(tmp_path))
    for s in range(10):
        w.add_scalar("loss", float(s), s)
    w.flush()
    (path,) = event_files(tmp_path)
    r = TfEventsReader(path)
    first = r.read()
    assert points(first.batch) == {"loss": [(s, float(s)) for s in range(10)]}
    assert points(r.read().batch) == {}  # nothing new
    for s in range(10, 25):
        w.add_scalar("loss", float(s), s)
    w.flush()
    second = r.read()
    assert second.reset is False and second.errors == []
    assert points(second.batch) == {"loss": [(s, float(s)) for s in range(10, 25)]}
    w.close()
    assert points(r.read().batch) == {}


def test_truncated_last_record_at_every_byte(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    offsets = steps_file(path, 3)
    whole = path.read_bytes()
    last = offsets[-1]
    for cut in range(last, len(whole)):
        path.write_bytes(whole[:cut])
        r = TfEventsReader(path)
        res = r.read()
        assert res.errors == [], cut
        got = points(res.batch)
        assert got["loss"] == expected_steps(0, 3)["loss"]
        assert got.get("lr", []) == expected_steps(0, 2)["lr"], cut
        with open(path, "ab") as fh:
            fh.write(whole[cut:])
        res2 = r.read()
        assert res2.errors == [] and not res2.reset
        assert points(res2.batch) == {"lr": expected_steps(2, 1)["lr"]}, cut


def test_record_longer_than_chunk(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    big = event_pb2.Event(wall_time=1.0, step=1)
    image = summary_pb2.Summary.Image(encoded_image_string=b"x" * 100_000)
    big.summary.value.add(tag="blob", image=image)
    write(path, [scalar_event("a", 1.0, 0), big.SerializeToString(), scalar_event("a", 2.0, 2)])
    res, got = read_all(path, chunk_size=4096)
    assert res.errors == [] and got == {"a": [(0, 1.0), (2, 2.0)]}


# -- damage ----------------------------------------------------------------------------------
def corrupt(path: Path, offset: int, xor: int = 0xFF) -> None:
    with open(path, "r+b") as fh:
        fh.seek(offset)
        byte = fh.read(1)[0]
        fh.seek(offset)
        fh.write(bytes([byte ^ xor]))


@pytest.mark.parametrize("where", ["data", "data_crc", "length", "length_crc"])
def test_crc_broken_record_in_the_middle(tmp_path: Path, where: str) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    offsets = steps_file(path, 20)
    bad_rec = 21  # record 0 is file_version; 21 is step 10's "loss"
    off = offsets[bad_rec]
    length = len(scalar_event("loss", 1.0 / 11, 10))
    pos = {
        "data": off + 12 + 5,
        "data_crc": off + 12 + length + 1,
        "length": off,
        "length_crc": off + 9,
    }[where]
    corrupt(path, pos, 0x01 if where == "length" else 0xFF)
    r = TfEventsReader(path)
    res = r.read()
    assert len(res.errors) == 1, res.errors
    assert f"corrupt record at offset {off} (" in res.errors[0]
    assert str(path) in res.errors[0]
    want = expected_steps(0, 20)
    want["loss"] = [p for p in want["loss"] if p[0] != 10]
    assert same(points(res.batch), want)
    # and reading goes on with later appends
    steps_file(path, 3, start=20)
    res2 = r.read()
    assert res2.errors == [] and same(points(res2.batch), expected_steps(20, 3))


def test_garbage_between_records(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    steps_file(path, 5)
    size = append_raw(path, b"\x07garbage that is no record at all" * 3)
    steps_file(path, 5, start=5)
    res, got = read_all(path)
    assert len(res.errors) == 1 and f"offset {size} " in res.errors[0]
    assert same(got, expected_steps(0, 10))


def test_huge_declared_length_refused_before_allocating(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    steps_file(path, 5)
    head = struct.pack("<Q", 1 << 40)
    bad_at = append_raw(path, head + struct.pack("<I", tr.masked_crc(head)) + b"\x01" * 64)
    steps_file(path, 5, start=5)
    tracemalloc.start()
    try:
        res, got = read_all(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024 * 1024
    assert len(res.errors) == 1
    assert f"corrupt record at offset {bad_at} (declared length {1 << 40}" in res.errors[0]
    assert same(got, expected_steps(0, 10))
    # the same header at the very end: refused, not waited for
    head = struct.pack("<Q", tr.MAX_RECORD + 1)
    append_raw(path, head + struct.pack("<I", tr.masked_crc(head)))
    res = TfEventsReader(path).read()
    assert any("exceeds" in e for e in res.errors)


def test_nul_tail_waits_then_reads_landed_data(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    steps_file(path, 5)
    more = b"".join(
        tr.frame_record(scalar_event(t, v, s))
        for s in range(5, 8)
        for t, v in (("loss", 1.0 / (s + 1)), ("lr", 0.1))
    )
    good_end = append_raw(path, b"\0" * len(more))  # NFS: the file grew, its data has not landed
    clock = FakeClock()
    r = TfEventsReader(path, nul_grace_s=5.0, clock=clock)
    res = r.read()
    assert res.errors == [] and same(points(res.batch), expected_steps(0, 5))
    clock.now = 4.9
    assert r.read().errors == []
    overwrite(path, good_end, more)  # the data lands in place
    clock.now = 30.0
    res = r.read()
    assert res.errors == [] and same(points(res.batch), expected_steps(5, 3))


def test_nul_block_called_corrupt_after_grace_and_reading_goes_on(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    steps_file(path, 5)
    zeros_at = append_raw(path, b"\0" * 100)
    clock = FakeClock()
    r = TfEventsReader(path, nul_grace_s=5.0, clock=clock)
    assert r.read().errors == []
    clock.now = 5.0
    res = r.read()
    assert res.errors == [f"{path}: corrupt record at offset {zeros_at} (100 zero bytes)"]
    steps_file(path, 2, start=5)
    res = r.read()
    assert res.errors == [] and same(points(res.batch), expected_steps(5, 2))


def test_partially_landed_record_waits(tmp_path: Path) -> None:
    """The header landed, the rest of the record is still zeros (its data CRC too)."""
    path = tmp_path / "events.out.tfevents.1.host"
    steps_file(path, 2)
    rec = tr.frame_record(scalar_event("loss", 0.5, 2))
    at = append_raw(path, rec[:14] + b"\0" * (len(rec) - 14))
    clock = FakeClock()
    r = TfEventsReader(path, clock=clock)
    assert r.read().errors == []
    clock.now = 1.0
    assert r.read().errors == []
    overwrite(path, at, rec)
    res = r.read()
    assert res.errors == [] and points(res.batch) == {"loss": [(2, 0.5)]}


@pytest.mark.parametrize("lands", [True, False])
def test_half_landed_record_then_zeros(tmp_path: Path, lands: bool) -> None:
    """NFS: the file grew by three records; only the first one's header has landed."""
    path = tmp_path / "events.out.tfevents.1.host"
    steps_file(path, 2)
    recs = [tr.frame_record(scalar_event("loss", 0.5 + i, 2 + i)) for i in range(3)]
    more = b"".join(recs)
    at = append_raw(path, more[:14] + b"\0" * (len(more) - 14))
    clock = FakeClock()
    r = TfEventsReader(path, nul_grace_s=5.0, clock=clock)
    assert r.read().errors == []
    for now in (1.0, 2.0, 3.0, 4.9):  # the waits must not restart each other
        clock.now = now
        assert r.read().errors == []
    if lands:
        overwrite(path, at, more)
        clock.now = 10.0
        res = r.read()
        assert res.errors == []
        assert points(res.batch) == {"loss": [(2, 0.5), (3, 1.5), (4, 2.5)]}
        return
    clock.now = 5.0
    res = r.read()
    second = at + len(recs[0])
    assert res.errors == [
        f"{path}: corrupt record at offset {at} (zero-filled)",
        f"{path}: corrupt record at offset {second} ({len(more) - len(recs[0])} zero bytes)",
    ]
    assert points(res.batch) == {}
    steps_file(path, 1, start=9)
    res = r.read()
    assert res.errors == [] and same(points(res.batch), expected_steps(9, 1))


# -- files that change under the reader ------------------------------------------------------
def test_replaced_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    steps_file(path, 5)
    r = TfEventsReader(path)
    assert same(points(r.read().batch), expected_steps(0, 5))
    tmp = tmp_path / "new.tmp"
    write(tmp, [scalar_event("acc", 0.5, 0), scalar_event("acc", 0.75, 1)])
    os.replace(tmp, path)
    res = r.read()
    assert res.reset and res.errors == []
    assert points(res.batch) == {"acc": [(0, 0.5), (1, 0.75)]}


def test_truncated_file_is_read_again(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    steps_file(path, 5)
    r = TfEventsReader(path)
    r.read()
    with open(path, "r+b") as fh:
        fh.truncate(0)
    res = r.read()
    assert res.reset and len(res.batch) == 0
    steps_file(path, 2)
    res = r.read()
    assert not res.reset and same(points(res.batch), expected_steps(0, 2))


def test_missing_file_reported_once_then_read(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.host"
    r = TfEventsReader(path)
    assert len(r.read().errors) == 1
    assert r.read().errors == []
    steps_file(path, 2)
    res = r.read()
    assert res.errors == [] and same(points(res.batch), expected_steps(0, 2))


# -- the fast path against protobuf, and split reads -----------------------------------------
class ProtobufOnly(TfEventsReader):
    """The reader with its vectorised decoder switched off: every record through protobuf."""

    def _fast(self, v, ds, lengths):  # type: ignore[no-untyped-def]
        n = ds.shape[0]
        e = np.empty(0)
        return np.zeros(n, np.bool_), e.astype(np.int64), e, e.astype(np.int32), e


tags = st.text(min_size=0, max_size=20) | st.sampled_from(
    ["loss", "lr", "grad_norm", "val/loss", "a" * 9, "b" * 16, "c" * 17, "t" * 127, "u" * 130]
)
values = st.floats(width=32, allow_nan=True, allow_infinity=True)
step_values = st.integers(min_value=-(2**40), max_value=2**40) | st.integers(0, 300)
records = st.lists(
    st.one_of(
        st.builds(scalar_event, tags, values, step_values, st.floats(0, 2e9)),
        st.builds(
            tensor_event,
            tags,
            values,
            step_values,
            st.sampled_from([types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_HALF]),
            meta=st.booleans(),
        ),
        st.just(file_version()),
    ),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None, suppress_health_check=[FIXTURE])
@given(records)
def test_fast_path_equals_protobuf(tmp_path: Path, recs: list[bytes]) -> None:
    path = tmp_path / "events.out.tfevents.fast"
    write(path, recs)
    fast_reader, slow_reader = TfEventsReader(path), ProtobufOnly(path)
    # twice: the second read knows the tags' plugins, so tensor scalars go the fast way too
    for again in (False, True):
        if again:
            write(path, recs, "ab")
        fast, slow = fast_reader.read(), slow_reader.read()
        assert fast.errors == slow.errors == []
        assert same(points(fast.batch), points(slow.batch))
        assert list(fast.batch.steps) == list(slow.batch.steps)
        assert np.array_equal(fast.batch.times, slow.batch.times)


@settings(max_examples=40, deadline=None, suppress_health_check=[FIXTURE])
@given(records, st.lists(st.integers(0, 10_000), max_size=8))
def test_split_reads_give_the_whole_file(
    tmp_path: Path, recs: list[bytes], cuts: list[int]
) -> None:
    whole_path = tmp_path / "events.out.tfevents.whole"
    write(whole_path, recs)
    data = whole_path.read_bytes()
    want = TfEventsReader(whole_path).read()
    path = tmp_path / "events.out.tfevents.split"
    path.write_bytes(b"")
    r = TfEventsReader(path)
    got: Points = {}
    bounds = sorted({c % (len(data) + 1) for c in cuts} | {len(data)})
    prev = 0
    for cut in bounds:
        with open(path, "ab") as fh:
            fh.write(data[prev:cut])
        prev = cut
        res = r.read()
        assert res.errors == [] and not res.reset
        merge(got, points(res.batch))
    assert same(got, points(want.batch))


@settings(max_examples=50, deadline=None)
@given(st.binary(min_size=0, max_size=3000), st.lists(st.integers(0, 2999), max_size=20))
def test_vectorised_crcs_match_crc32c(data: bytes, starts: list[int]) -> None:
    v = tr.ByteView(data)
    st_ = np.array([s % (len(data) + 1) for s in starts], np.int64)
    ln = np.array([(len(data) - s) // (i + 1) for i, s in enumerate(st_)], np.int64)
    got = tr.data_crcs(v, data, st_, ln)
    want = [tr.crc32c(data[a : a + n]) for a, n in zip(st_, ln, strict=True)]
    assert [int(x) for x in got] == want
    pos = np.array([s for s in st_ if s + 8 <= len(data)], np.int64)
    want = [tr.masked_crc(data[p : p + 8]) for p in pos]
    assert [int(x) for x in tr.header_crcs(v, pos)] == want


def test_a_file_like_the_benchmark_matches_event_accumulator(tmp_path: Path) -> None:
    """Many records through the fast path (several chunks), compared with EventAccumulator."""
    path = tmp_path / "events.out.tfevents.1.host"
    recs = [file_version()]
    for s in range(3000):
        recs += [
            scalar_event("loss", 1.0 / (s + 1), s, 1.7e9 + s),
            scalar_event("grad_norm", 2.0 + s % 7, s, 1.7e9 + s),
            scalar_event("lr", 1e-3, s, 1.7e9 + s),
        ]
        if s % 100 == 99:
            recs.append(scalar_event("val_loss", 0.5, s, 1.7e9 + s))
    write(path, recs)
    res = TfEventsReader(path, chunk_size=8192).read()
    want, times = ea_points(path)
    assert res.errors == [] and same(points(res.batch), want)
    assert len(res.batch) == 3000
    assert np.array_equal(res.batch.times, np.array(times["loss"]))


damage = st.one_of(
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255), st.just(1)),
    st.tuples(st.just("zero"), st.integers(0, 10**6), st.just(0), st.integers(1, 300)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255), st.integers(1, 300)),
)


@settings(max_examples=80, deadline=None, suppress_health_check=[FIXTURE])
@given(st.integers(1, 40), st.lists(damage, min_size=1, max_size=3))
def test_damage_costs_only_the_damaged_records(
    tmp_path: Path, n: int, harms: list[tuple[str, int, int, int]]
) -> None:
    recs = [scalar_event(f"t{i % 3}", float(i), i) for i in range(n)]
    framed = [tr.frame_record(r) for r in recs]
    spans = []
    at = 0
    for f in framed:
        spans.append([at, at + len(f)])
        at += len(f)
    data = bytearray(b"".join(framed))
    intact = [True] * n
    for kind, where, byte, size in harms:
        o = where % (len(data) + 1)
        if kind == "insert":
            data[o:o] = bytes([byte]) * size
            for i, (a, e) in enumerate(spans):
                if a < o < e:
                    intact[i] = False
                if a >= o:
                    spans[i] = [a + size, e + size]
            continue
        end = min(o + size, len(data))
        for i in range(o, end):
            data[i] = data[i] ^ byte if kind == "flip" else 0
        for i, (a, e) in enumerate(spans):
            if a < end and o < e:
                intact[i] = False
    path = tmp_path / "events.out.tfevents.damaged"
    path.write_bytes(bytes(data))
    res = TfEventsReader(path, nul_grace_s=0.0).read()
    got = {(tag, s, v) for tag, pts in points(res.batch).items() for s, v in pts}
    everything = {(f"t{i % 3}", i, float(i)) for i in range(n)}
    kept = {(f"t{i % 3}", i, float(i)) for i in range(n) if intact[i]}
    assert kept <= got <= everything
    if got != everything:
        assert res.errors


# -- hostile sizes and restarts (issue 14) -----------------------------------------------------
def test_length_field_of_2_60_allocates_nothing(tmp_path: Path) -> None:
    """A header declaring 2**60 bytes, with a valid length CRC (CRCs are no secret), is refused
    before anything is allocated; the records after it are read."""
    path = tmp_path / "events.out.tfevents.1.h"
    steps_file(path, 5)
    head = struct.pack("<Q", 1 << 60)
    append_raw(path, head + struct.pack("<I", tr.masked_crc(head)) + b"\x09" * 64)
    write(path, [scalar_event("loss", 0.5, 5)], "ab")
    tracemalloc.start()
    try:
        res, got = read_all(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert [s for s, _ in got["loss"]] == list(range(6))
    assert any("exceeds 256 MiB" in e for e in res.errors)
    assert peak < 64 << 20, f"peak {peak / 2**20:.0f} MiB"


def test_record_over_the_decode_limit_is_checked_in_pieces_and_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A well-formed record longer than MAX_DECODE (lowered to 1 MiB here) is never read whole:
    its CRC is checked in pieces, it is skipped with an error, later records are read; a
    corrupt one says so."""
    import tui.logs.tfevents as tfe

    monkeypatch.setattr(tfe, "MAX_DECODE", 1 << 20)
    monkeypatch.setattr(tfe, "_STREAM", 64 * 1024)
    path = tmp_path / "events.out.tfevents.1.h"
    steps_file(path, 3)
    big = event_pb2.Event(wall_time=1.7e9, step=3)
    big.summary.value.add(tag="img", simple_value=1.0)
    blob = big.SerializeToString() + b"\x00" * (3 << 20)  # padding: a 3 MiB record
    write(path, [blob], "ab")
    bad = bytearray(tr.frame_record(blob))
    bad[-1] ^= 0xFF  # a data CRC that does not match
    append_raw(path, bytes(bad))
    write(path, [scalar_event("loss", 0.25, 4)], "ab")
    reader = TfEventsReader(path, chunk_size=64 * 1024)
    tracemalloc.start()
    try:
        res = reader.read()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    got = points(res.batch)
    assert [s for s, _ in got["loss"]] == [0, 1, 2, 4]
    skipped = [e for e in res.errors if "skipped" in e]
    assert len(skipped) == 2 and "over the 1 MiB" in skipped[0] and "crc" in skipped[1]
    assert peak < 3 << 20, f"peak {peak / 2**20:.1f} MiB"  # the 3 MiB record never whole


def test_file_rewritten_over_the_same_steps_keeps_only_the_last_pass(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """torch's SummaryWriter logging steps 0..199 five times into one file (a run restarted
    inside its file): the read keeps the rows of the last pass (the same rule as the store's),
    and drops the others while it reads (compaction threshold lowered here)."""
    pytest.importorskip("torch")
    from torch.utils.tensorboard import SummaryWriter

    import tui.logs.batch as batch_mod

    monkeypatch.setattr(batch_mod.BatchAccumulator.__init__, "__defaults__", (300,))
    w = SummaryWriter(str(tmp_path))
    for rep in range(5):
        for s in range(200):
            w.add_scalar("loss", float(rep * 1000 + s), s)
    w.close()
    (path,) = event_files(tmp_path)
    res, got = read_all(path)
    assert [s for s, _ in got["loss"]] == list(range(200))
    assert [v for _, v in got["loss"]] == [4000.0 + s for s in range(200)]
    assert len(res.batch) == 200  # superseded rows dropped within the read
    assert res.batch.restarts == [(0, 199)]


def test_reset_is_on_the_batch(tmp_path: Path) -> None:
    path = tmp_path / "events.out.tfevents.1.h"
    steps_file(path, 10)
    reader = TfEventsReader(path)
    assert not reader.read().batch.reset
    os.truncate(path, 0)
    steps_file(path, 3)
    res = reader.read()
    assert res.reset and res.batch.reset and len(res.batch) == 3
