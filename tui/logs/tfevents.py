"""Incremental reader of TensorBoard event files (`*.tfevents.*`).

An event file is a sequence of TFRecords (see tfrecord.py), each holding one serialized
`Event` protobuf. The reader remembers its byte offset (through FileTail) and each `read()`
returns only the scalars of records completed since the last call, in time proportional to the
new bytes; a file that is replaced (new inode) or shrinks is read again from its start with
`reset=True`.

Speed. TensorBoard's EventAccumulator decodes every record with protobuf, one Python object
per event (~60k scalars/s). Here a chunk of the file (4 MiB) is handled by numpy, with no Python
step per record in the common case:
- framing: every position where an Event could start (its data begins with 0x09, the
  wall_time field) and whose 12-byte header checks out is a candidate; runs of candidates that
  link up (one's end is the next one's start) are whole runs of records. Anything else (a long
  record, damage, the file's end) is stepped over one record at a time with every check;
- CRCs: the length CRCs and the data CRCs are computed vectorised (tfrecord.py), and stay on;
- decoding: the one layout that matters for speed, `Event{wall_time, step, summary{value{tag,
  simple_value}}}` (what torch.utils.tensorboard's and tensorboardX's `add_scalar` write), is
  decoded across all records at once; tags are keyed by their bytes. Any record without
  exactly that layout (file_version, graph defs, histograms, new-style tensor scalars, several
  values in one event, long tags, ...) goes to the protobuf parser (tensorboard's `event_pb2`),
  so the fast path never has to be clever to be correct (the tests hold one to the other).

Scalars are `simple_value`s, and tensor scalars of new-style writers (plugin `scalars`, one
float/double/half/bfloat16 element; TF writes the plugin metadata only with a tag's first value,
so the plugin of a tag is remembered). Columns are the file's raw tag names; scalars of
different tags at the same step share a row (a tag repeating at the same step starts a new
one); a row's time is the wall time of its first event.

Damage never stops reading and never costs a good record (TensorBoard's readers stall on a bad
record or skip it silently):
- a truncated last record waits for the rest;
- a record whose length CRC or data CRC is wrong is skipped and reported as "<path>: corrupt
  record at offset N (...)"; after a bad length the reader resyncs on the next position whose
  length and length CRC check out, then goes on with later records and later appends;
- a declared length beyond 256 MiB is refused before anything is allocated (then resync), so a
  length field of 2**60 allocates nothing; a record over 64 MiB (MAX_DECODE: no scalar event
  is that large, a hostile header may claim it) is not read whole: its data CRC is checked in
  1 MiB pieces, and it is skipped with an error entry;
- memory is bounded by the rows that survive: chunks are decoded one at a time and rows a
  later restart supersedes are dropped as they pile up (batch.BatchAccumulator, the rule all
  formats share), so an event file rewritten over the same steps while it grows costs the
  memory of its last pass, not of every pass;
- a zero-filled tail (NFS extends a file before its data lands) is waited for `nul_grace_s`
  seconds before it is called corrupt; data that replaces the zeros in time is read normally.
"""

from __future__ import annotations

import math
import os
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from google.protobuf.message import DecodeError
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, types_pb2

from tui.logs import tfrecord as tr
from tui.logs.batch import BatchAccumulator, Column, ColumnBatch
from tui.logs.reader import ReadResult
from tui.logs.safe_io import UnsafeFile, open_regular
from tui.logs.tail import FileTail

# bytes read and decoded at a time: bounds the reader's own memory, and keeps the numpy
# temporaries of a chunk (~100k records) small enough to stay in cache
CHUNK = 4 * 1024 * 1024
# a record longer than this is CRC-checked in pieces and skipped, never read whole (the whole
# record, its padded copy and its protobuf would cost ~3x this)
MAX_DECODE = 64 * 1024 * 1024
_STREAM = 1024 * 1024
_HASH_MULT = np.uint64(0x9E3779B97F4A7C15)
_ALL64 = np.uint64(0xFFFFFFFFFFFFFFFF)
_U64 = struct.Struct("<Q")

# tensor dtypes a scalar may have, and how their values are stored
_FLOAT_DTYPES = {
    types_pb2.DT_FLOAT: "float_val",
    types_pb2.DT_DOUBLE: "double_val",
    types_pb2.DT_HALF: "half_val",
    types_pb2.DT_BFLOAT16: "half_val",
}
_CONTENT_DTYPES = {
    types_pb2.DT_FLOAT: np.dtype("<f4"),
    types_pb2.DT_DOUBLE: np.dtype("<f8"),
    types_pb2.DT_HALF: np.dtype("<u2"),  # bits, as half_val holds them
    types_pb2.DT_BFLOAT16: np.dtype("<u2"),
}


@dataclass
class _Entries:
    """Scalars in file order: one per (event, summary value)."""

    steps: np.ndarray  # int64
    times: np.ndarray  # float64
    tags: np.ndarray  # int32, index into TfEventsReader._tag_names
    values: np.ndarray  # float64

    def __len__(self) -> int:
        return int(self.steps.shape[0])

    @classmethod
    def empty(cls) -> _Entries:
        return cls(
            np.empty(0, np.int64), np.empty(0, np.float64), np.empty(0, np.int32), np.empty(0)
        )

    def take(self, idx: np.ndarray | slice) -> _Entries:
        return _Entries(self.steps[idx], self.times[idx], self.tags[idx], self.values[idx])

    @staticmethod
    def concat(parts: list[_Entries]) -> _Entries:
        parts = [p for p in parts if len(p)]
        if not parts:
            return _Entries.empty()
        if len(parts) == 1:
            return parts[0]
        return _Entries(
            np.concatenate([p.steps for p in parts]),
            np.concatenate([p.times for p in parts]),
            np.concatenate([p.tags for p in parts]),
            np.concatenate([p.values for p in parts]),
        )


@dataclass
class _Scan:
    consumed: int = 0  # bytes of the buffer dealt with (records, skipped damage)
    starts: np.ndarray | None = None  # good records' starts in the buffer
    lengths: np.ndarray | None = None  # and their data lengths
    view: tr.ByteView | None = None  # the buffer, as arrays
    errors: list[tuple[int, str]] = field(default_factory=list)  # (buffer position, message)
    need: int = 0  # bytes from `consumed` needed to go on (a record longer than the buffer)
    stalled: bool = False  # waiting (NUL grace): more bytes now would not help


class TfEventsReader:
    """Reads one event file incrementally (the Reader protocol of tui.logs.reader)."""

    format = "tfevents"

    def __init__(
        self,
        path: str | Path,
        *,
        nul_grace_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        chunk_size: int = CHUNK,
    ) -> None:
        self.path = Path(path)
        self.nul_grace_s = nul_grace_s
        self._clock = clock
        self._chunk = max(int(chunk_size), 4096)
        self._tail = FileTail(self.path)
        self._missing = False
        self._forget()

    def _forget(self) -> None:
        """Drop everything learnt from the file's content (it was replaced or truncated)."""
        self._tag_names: list[str] = []
        self._tag_ids: dict[str, int] = {}
        self._tag_bytes: list[bytes] = []  # raw bytes the fast path verifies a tag against
        self._hash_ids: dict[int, dict[int, int]] = {}  # tag length -> {hash: tag id}
        self._plugins: dict[str, str] = {}  # tag -> plugin name, from its first metadata
        self._learn_until = -1  # set by _fast: see _decode
        # file offset -> when zeros were first seen there (a NUL block, or a record whose
        # data CRC is still zeros); several at once: a half-landed record, then zeros
        self._nul_seen: dict[int, float] = {}

    @property
    def offset(self) -> int:
        """Bytes of the file dealt with so far."""
        return self._tail.offset

    # -- reading ----------------------------------------------------------------------------
    def read(self) -> ReadResult:
        result = ReadResult()
        acc = BatchAccumulator()
        carry = _Entries.empty()
        want = self._chunk
        while True:
            got = self._tail.read_bytes(limit=want)
            if got.reset:
                # the file was replaced or shrank: what this call gathered is of the old one
                result.reset = True
                acc = BatchAccumulator()
                carry = _Entries.empty()
                self._forget()
            if got.missing:
                if not self._missing:
                    result.errors.append(got.error or f"{self.path}: cannot be read")
                self._missing = True
                break
            self._missing = False
            data = got.data
            if not data:
                break
            base = self._tail.offset
            scan = self._scan(data, base)
            self._tail.consume(scan.consumed)
            result.errors.extend(msg for _, msg in sorted(scan.errors))
            if scan.starts is not None and scan.view is not None and scan.starts.shape[0]:
                entries = self._decode(
                    data, scan.view, scan.starts, scan.lengths, base, result.errors
                )
                batch, carry = self._pivot(_Entries.concat([carry, entries]), final=False)
                acc.add(batch)
            if scan.stalled or len(data) < want:
                break  # waiting for time to pass, or all there is has been read
            if scan.consumed == 0:
                if scan.need <= len(data):
                    break  # cannot happen; never spin
                if scan.need > MAX_DECODE + tr.OVERHEAD:
                    if not self._skip_long(scan.need, result.errors):
                        break  # not all there yet: wait for the rest
                    want = self._chunk
                    continue
                want = scan.need  # one record longer than a chunk: read it whole
            else:
                want = self._chunk
        if len(carry):
            batch, _ = self._pivot(carry, final=True)
            acc.add(batch)
        if self._nul_seen:  # forget the zeros that have been read past
            done = self._tail.offset
            self._nul_seen = {k: t for k, t in self._nul_seen.items() if k >= done}
        result.batch = acc.result()
        result.batch.reset = result.reset
        return result

    def _skip_long(self, size: int, errors: list[str]) -> bool:
        """Step over the record of `size` bytes (framing included) at the offset, whose header
        checked out, with its data CRC checked in pieces; False while it is not all there."""
        start = self._tail.offset
        try:
            fd, st = open_regular(self.path)
        except UnsafeFile:
            return False  # FileTail reports it on the next read
        try:
            if st.st_size < start + size:
                return False
            crc = 0
            at, end = start + tr.HEADER, start + size - tr.FOOTER
            while at < end:
                piece = os.pread(fd, min(_STREAM, end - at), at)
                if not piece:
                    return False
                crc = tr.crc32c(piece, crc)
                at += len(piece)
            stored = os.pread(fd, tr.FOOTER, end)
        except OSError:
            return False
        finally:
            os.close(fd)
        masked = (((crc >> 15) | (crc << 17)) + tr.MASK_DELTA) & 0xFFFFFFFF
        length = size - tr.OVERHEAD
        if len(stored) == tr.FOOTER and int.from_bytes(stored, "little") == masked:
            why = f"a {length:,}-byte record, over the {MAX_DECODE >> 20} MiB an event is read to"
        else:
            why = "data crc mismatch"
        errors.append(f"{self.path}: record at offset {start} skipped ({why})")
        self._tail.consume(size)
        return True

    # -- framing ----------------------------------------------------------------------------
    def _nul_waiting(self, offset: int) -> bool:
        """Whether a zero-filled block at this file offset is still within its grace period."""
        now = self._clock()
        since = self._nul_seen.setdefault(offset, now)
        if now - since < self.nul_grace_s:
            return True
        del self._nul_seen[offset]  # called corrupt now; zeros seen there later start anew
        return False

    def _scan(self, buf: bytes, base: int) -> _Scan:
        """Find the good records of `buf` (which starts at file offset `base`)."""
        out = _Scan()
        v = tr.ByteView(buf)
        n = v.n
        mv = memoryview(buf)
        # runs of linked candidate records are taken whole; anything else is stepped over one
        # record at a time, with every check, below
        cs, ce = tr.chain(v, 0)
        linked = np.zeros(cs.shape[0], np.bool_)
        if cs.shape[0] > 1:
            np.equal(ce[:-1], cs[1:], out=linked[:-1])
        breaks = np.flatnonzero(~linked)  # run ends: the last candidate is always one
        starts: list[np.ndarray] = []
        ends: list[np.ndarray] = []
        one_s: list[int] = []  # records stepped over singly, flushed into starts/ends
        one_e: list[int] = []
        pos = 0
        while True:
            j = int(np.searchsorted(cs, pos))
            if j < cs.shape[0] and cs[j] == pos:
                e = int(breaks[np.searchsorted(breaks, j)])
                if one_s:
                    starts.append(np.array(one_s, np.int64))
                    ends.append(np.array(one_e, np.int64))
                    one_s, one_e = [], []
                starts.append(cs[j : e + 1])
                ends.append(ce[j : e + 1])
                pos = int(ce[e])
                continue
            rest = n - pos
            if rest == 0:
                break
            if rest >= tr.HEADER:
                (length,) = _U64.unpack_from(buf, pos)
                crc_ok = tr.masked_crc(mv[pos : pos + 8]) == int(v.u32[pos + 8])
                if crc_ok and length <= tr.MAX_RECORD:
                    end = pos + tr.OVERHEAD + length
                    if end <= n:
                        one_s.append(pos)
                        one_e.append(end)
                        pos = end
                        continue
                    out.need = end - pos
                    break  # a valid header whose record is not complete yet: wait for it
            if not v.b[pos : min(pos + tr.HEADER, n)].any():
                # a zero-filled block: give the data time to land before calling it corrupt
                nonzero = v.b[pos:n] != 0
                zeros = int(np.argmax(nonzero)) if nonzero.any() else rest
                if self._nul_waiting(base + pos):
                    out.stalled = True
                    break
                msg = f"{self.path}: corrupt record at offset {base + pos} ({zeros} zero bytes)"
                out.errors.append((pos, msg))
                pos += zeros
                if pos == n:
                    break
                q = tr.find_header(v, pos)
                pos = q if q >= 0 else max(pos, n - tr.HEADER + 1)
                if q < 0:
                    break
                continue
            if rest < tr.HEADER:
                out.need = tr.HEADER
                break  # a header not yet complete
            why = (
                "bad length crc"
                if not crc_ok
                else f"declared length {length} exceeds {tr.MAX_RECORD >> 20} MiB"
            )
            q = tr.find_header(v, pos + 1)
            skip_to = q if q >= 0 else max(pos + 1, n - tr.HEADER + 1)
            msg = (
                f"{self.path}: corrupt record at offset {base + pos} ({why}; "
                f"skipped {skip_to - pos} bytes)"
            )
            out.errors.append((pos, msg))
            pos = skip_to
            if q < 0:
                break
        if one_s:
            starts.append(np.array(one_s, np.int64))
            ends.append(np.array(one_e, np.int64))
        out.consumed = pos
        if not starts:
            return out
        st = np.concatenate(starts)
        en = np.concatenate(ends)
        # data CRCs, vectorised (CRC checking stays on: it is what tells damage from data)
        raw = tr.data_crcs(v, buf, st + tr.HEADER, en - st - tr.OVERHEAD)
        stored = v.u32[en - tr.FOOTER]
        bad = np.flatnonzero(tr.mask_array(raw) != stored)
        keep = None
        for i in bad.tolist():
            off = base + int(st[i])
            zero = int(stored[i]) == 0
            if zero and self._nul_waiting(off):
                # the data CRC is still zeros: NFS may not have landed this record yet
                out.consumed = int(st[i])
                out.stalled = True
                out.need = 0
                # damage found past here is found again (and reported) when read again
                out.errors = [(p, m) for p, m in out.errors if p < out.consumed]
                st, en = st[:i], en[:i]
                if keep is not None:
                    keep = keep[:i]
                break
            why = "zero-filled" if zero else "data crc mismatch"
            out.errors.append((int(st[i]), f"{self.path}: corrupt record at offset {off} ({why})"))
            if keep is None:
                keep = np.ones(st.shape[0], np.bool_)
            keep[i] = False
        if keep is not None:
            st, en = st[keep], en[keep]
        out.view = v
        out.starts = st
        out.lengths = en - st - tr.OVERHEAD
        return out

    # -- decoding ---------------------------------------------------------------------------
    def _intern(self, name: str, raw: bytes) -> int:
        tid = self._tag_ids.get(name)
        if tid is None:
            tid = len(self._tag_names)
            self._tag_ids[name] = tid
            self._tag_names.append(name)
            self._tag_bytes.append(raw)
        return tid

    def _learn_tag(self, v: tr.ByteView, a: int, t: int, key: int, known: dict[int, int]) -> int:
        """The id of the new `t`-byte tag at buffer position `a`, remembered under `key`; -1
        when its name is already another byte string's (two byte strings, one name after
        decoding): those are left to protobuf."""
        raw = v.b[a : a + t].tobytes()
        tid = self._intern(raw.decode("utf-8", "replace"), raw)
        if self._tag_bytes[tid] != raw:
            return -1
        known[key] = tid
        return tid

    def _decode(
        self,
        buf: bytes,
        v: tr.ByteView,
        st: np.ndarray,
        lengths: np.ndarray,
        base: int,
        errors: list[str],
        *,
        learn: bool = True,
    ) -> _Entries:
        """The scalars of the good records starting at `st` (buffer positions), in order."""
        ds = st + tr.HEADER
        fast, steps, times, tags, values = self._fast(v, ds, lengths)
        cut = self._learn_until + 1
        if cut and learn and cut < st.shape[0]:
            # tensor scalars of tags whose plugin is learnt only in this chunk: decode up to
            # the last such tag's first record as is (protobuf learns), then the rest again,
            # now on the fast path
            head = self._decode(buf, v, st[:cut], lengths[:cut], base, errors, learn=False)
            tail = self._decode(buf, v, st[cut:], lengths[cut:], base, errors, learn=False)
            return _Entries.concat([head, tail])
        slow = np.flatnonzero(~fast)
        if not slow.shape[0]:
            return _Entries(steps, times, tags, values)
        # records of any other layout: protobuf, one by one, placed back in file order
        rec: list[int] = []
        s_steps: list[int] = []
        s_times: list[float] = []
        s_tags: list[int] = []
        s_values: list[float] = []
        for i in slow.tolist():
            a = int(ds[i])
            try:
                event = event_pb2.Event.FromString(buf[a : a + int(lengths[i])])
            except (DecodeError, ValueError) as exc:
                errors.append(
                    f"{self.path}: corrupt record at offset {base + int(st[i])} "
                    f"(undecodable event: {exc})"
                )
                continue
            if event.WhichOneof("what") != "summary":
                continue
            for value in event.summary.value:
                x = self._scalar_of(value)
                if x is None:
                    continue
                rec.append(i)
                s_steps.append(event.step)
                s_times.append(event.wall_time)
                s_tags.append(self._intern(value.tag, value.tag.encode()))
                s_values.append(x)
        fast_idx = np.flatnonzero(fast)
        order_key = np.concatenate([fast_idx, np.array(rec, np.int64)])
        # stable: the values of one event keep their order
        order = np.argsort(order_key, kind="stable")
        return _Entries(
            np.concatenate([steps, np.array(s_steps, np.int64)])[order],
            np.concatenate([times, np.array(s_times, np.float64)])[order],
            np.concatenate([tags, np.array(s_tags, np.int32)])[order],
            np.concatenate([values, np.array(s_values, np.float64)])[order],
        )

    def _scalar_of(self, value: summary_pb2.Summary.Value) -> float | None:
        """A summary value's scalar, or None when it holds something else."""
        if value.HasField("metadata") and value.metadata.plugin_data.plugin_name:
            self._plugins.setdefault(value.tag, value.metadata.plugin_data.plugin_name)
        kind = value.WhichOneof("value")
        if kind == "simple_value":
            return float(value.simple_value)
        if kind == "tensor" and self._plugins.get(value.tag) == "scalars":
            return _tensor_scalar(value.tensor)
        return None

    def _fast(
        self, v: tr.ByteView, ds: np.ndarray, lengths: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised decoding of one-scalar events, for the layouts writers use.

        Returns (fast mask over all records, then steps, times, tag ids, values of the fast
        ones). The wire layout checked, byte by byte (fields come in field-number order and
        proto3 leaves out a zero step):

            09 <wall_time f64> [10 <step varint>] 2a <slen> 0a <vlen> 0a <tlen> <tag> VALUE

        every length one byte, slen = vlen + 2, and VALUE ending the record exactly, one of

            15 <f32>                                        simple_value
            42 <tl> TENSOR [4a <ml> METADATA]               a new-style tensor scalar

        TENSOR: `08 01 [12 00] 2a 04 <f32>` or `08 02 [12 00] 32 08 <f64>` (dtype, empty
        shape, one packed float/double); METADATA: exactly plugin "scalars" (and data_class
        scalar). A tensor counts only for a tag already known as a "scalars" one (TF writes
        the plugin with a tag's first value only, and the first metadata of a tag decides):
        records up to a new tag's first one go through protobuf, which learns its plugin in
        file order, and `_learn_until` tells _decode to decode the rest again. Anything else
        is left to protobuf. Gathers may run ~320 bytes past a short record: the view is
        padded for it.
        """
        b = v.b
        n = ds.shape[0]
        end = ds + lengths
        # the smallest such event: 9 (wall_time) + 4 (summary, value) + 2 + 5 (tag, value)
        idx = np.flatnonzero((lengths >= 20) & (b[ds] == 0x09))
        ds_c = ds[idx]
        p = ds_c + 10  # the step varint, when field 2 is there
        has_step = b[p - 1] == 0x10
        byte = b[p]
        step = (byte & 0x7F).astype(np.int64)
        width = np.ones(idx.shape[0], np.int64)
        more = np.flatnonzero(has_step & (byte >= 0x80))
        for k in range(1, 5):  # steps below 2**35; a longer (or negative) one: protobuf
            if not more.shape[0]:
                break
            byte = b[p[more] + k]
            step[more] |= (byte & 0x7F).astype(np.int64) << (7 * k)
            width[more] = k + 1
            more = more[byte >= 0x80]
        ok = np.ones(idx.shape[0], np.bool_)
        ok[more] = False
        step[~has_step] = 0
        q = np.where(has_step, p + width, p - 1)  # the summary field's tag byte
        slen = b[q + 1].astype(np.int64)
        vlen = b[q + 3].astype(np.int64)
        tlen = b[q + 5].astype(np.int64)
        vend = q + 4 + vlen
        ok &= (
            (b[q] == 0x2A)
            & (b[q + 2] == 0x0A)
            & (b[q + 4] == 0x0A)
            & (slen < 0x80)
            & (vlen < 0x80)
            & (tlen < 0x80)
            & (slen == vlen + 2)
            & (vend == end[idx])
        )
        u = q + 6 + tlen  # the value's field after the tag
        simple = ok & (b[u] == 0x15) & (vlen == tlen + 7)
        vpos = u + 1  # where the value's bytes are
        wide = np.zeros(idx.shape[0], np.bool_)  # a double
        tensor = ok & (b[u] == 0x42)
        if tensor.any():
            tensor, tpos, twide = _tensor_layout(v, u, vend, tensor)
            vpos = np.where(tensor, tpos, vpos)
            wide = tensor & twide
        ok = simple | tensor
        if not ok.all():
            sel = np.flatnonzero(ok)
            idx, ds_c, q, tlen, step = idx[sel], ds_c[sel], q[sel], tlen[sel], step[sel]
            vpos, wide, tensor = vpos[sel], wide[sel], tensor[sel]
        tag_ids = self._resolve_tags(v, q + 6, tlen)
        known = tag_ids >= 0  # a tag the key could not vouch for goes to protobuf
        self._learn_until = -1
        if tensor.any():
            plugin = [self._plugins.get(name) for name in self._tag_names]
            scalar_tags = np.array([p == "scalars" for p in plugin], np.bool_)
            unknown_tags = np.array([p is None for p in plugin], np.bool_)
            tid = np.maximum(tag_ids, 0)
            learn = known & tensor & unknown_tags[tid]
            if learn.any():
                # the last first appearance of a tag whose plugin is not known yet: up to
                # there, protobuf learns the plugins in file order
                _, first = np.unique(tag_ids[learn], return_index=True)
                self._learn_until = int(idx[np.flatnonzero(learn)[first].max()])
            known &= ~tensor | scalar_tags[tid]
        if not known.all():
            sel = np.flatnonzero(known)
            idx, ds_c, step, tag_ids = idx[sel], ds_c[sel], step[sel], tag_ids[sel]
            vpos, wide = vpos[sel], wide[sel]
        fast = np.zeros(n, np.bool_)
        fast[idx] = True
        times = v.f64[ds_c + 1]
        values = v.f32[vpos].astype(np.float64)
        if wide.any():
            values[wide] = v.f64[vpos[wide]]
        return fast, step, times, tag_ids, values

    def _resolve_tags(self, v: tr.ByteView, ts: np.ndarray, tlen: np.ndarray) -> np.ndarray:
        """Tag ids of the tags at positions `ts` (lengths `tlen`); -1 where unsure.

        A tag is keyed by its bytes read as one little-endian word (exact for tags up to 8
        bytes), or by a hash of its words; keys are looked up among those already known for
        that length. A hash is then verified against the tag's bytes, and a mismatch (a
        collision) is left to protobuf.
        """
        ids = np.full(ts.shape[0], -1, np.int32)
        if not ts.shape[0]:
            return ids
        counts = np.bincount(tlen)
        lengths = np.flatnonzero(counts).tolist()
        for t in lengths:
            rows = np.arange(ts.shape[0]) if len(lengths) == 1 else np.flatnonzero(tlen == t)
            at = ts[rows]
            words_n = max((t + 7) // 8, 1)
            tail_bits = 8 * (t - 8 * (words_n - 1))
            tail_mask = np.uint64((1 << tail_bits) - 1) if tail_bits < 64 else _ALL64
            if words_n == 1:
                h = v.u64[at] & tail_mask
            else:
                h = v.u64[at].copy()
                for w in range(1, words_n):
                    word = v.u64[at + 8 * w]
                    if w == words_n - 1:
                        word &= tail_mask
                    h = h * _HASH_MULT + word
            known = self._hash_ids.setdefault(t, {})
            out = np.full(rows.shape[0], -1, np.int32)
            todo = np.ones(rows.shape[0], np.bool_)
            if len(known) <= 16:
                for key, tid in known.items():
                    m = h == np.uint64(key)
                    out[m] = tid
                    todo &= ~m
            else:
                keys = np.fromiter(known.keys(), np.uint64, len(known))
                vals = np.fromiter(known.values(), np.int32, len(known))
                order = np.argsort(keys)
                keys, vals = keys[order], vals[order]
                pos = np.minimum(np.searchsorted(keys, h), keys.shape[0] - 1)
                hit = keys[pos] == h
                out[hit] = vals[pos[hit]]
                todo &= ~hit
            rest = np.flatnonzero(todo)
            # new tags: one at a time while few (each a pass over what is left) ...
            for _ in range(8):
                if not rest.shape[0]:
                    break
                key = h[rest[0]]
                tid = self._learn_tag(v, int(at[rest[0]]), t, int(key), known)
                m = h[rest] == key
                out[rest[m]] = tid
                rest = rest[~m]
            if rest.shape[0]:
                # ... and many at once by sorting, when there are many
                uniq, first, inv = np.unique(h[rest], return_index=True, return_inverse=True)
                new_ids = np.array(
                    [
                        self._learn_tag(v, int(at[rest[first[j]]]), t, int(uniq[j]), known)
                        for j in range(uniq.shape[0])
                    ],
                    np.int32,
                )
                out[rest] = new_ids[inv.reshape(-1)]
            if words_n > 1:
                # a hash is no proof: compare each word with the tag's own
                have = np.flatnonzero(out >= 0)
                if have.shape[0]:
                    ref = np.zeros((len(self._tag_bytes), words_n), np.uint64)
                    for tid in set(known.values()):
                        raw = self._tag_bytes[tid].ljust(8 * words_n, b"\0")
                        ref[tid] = np.frombuffer(raw, "<u8")
                    same = np.ones(have.shape[0], np.bool_)
                    mine = out[have]
                    for w in range(words_n):
                        word = v.u64[at[have] + 8 * w]
                        if w == words_n - 1:
                            word &= tail_mask
                        same &= word == ref[mine, w]
                    out[have[~same]] = -1
            ids[rows] = out
        return ids

    # -- rows -------------------------------------------------------------------------------
    def _pivot(self, e: _Entries, final: bool) -> tuple[ColumnBatch, _Entries]:
        """Scalars -> rows: consecutive scalars at one step with distinct tags share a row.

        Unless `final`, the scalars of the last step are held back (returned as the carry):
        the next chunk may hold more tags of that step.
        """
        n = len(e)
        if n == 0:
            return ColumnBatch.empty(), e
        if not final:
            diff = np.flatnonzero(e.steps != e.steps[-1])
            k = int(diff[-1]) + 1 if diff.shape[0] else 0
            if k == 0:
                return ColumnBatch.empty(), e
            e, carry = e.take(slice(0, k)), e.take(slice(k, n))
            n = k
        else:
            carry = _Entries.empty()
        start = np.empty(n, np.bool_)
        start[0] = True
        np.not_equal(e.steps[1:], e.steps[:-1], out=start[1:])
        # a tag repeating within one step's run starts a new row: find each scalar's previous
        # scalar of the same tag (a stable sort by tag), then walk only the suspicious ones
        tags = e.tags.astype(np.uint16) if len(self._tag_names) < 1 << 16 else e.tags
        order = np.argsort(tags, kind="stable")
        prev_same = np.full(n, -1, np.int64)
        same = tags[order[1:]] == tags[order[:-1]]
        prev_same[order[1:][same]] = order[:-1][same]
        run_start = np.maximum.accumulate(np.where(start, np.arange(n), 0))
        suspects = np.flatnonzero(prev_same >= run_start)
        if suspects.shape[0]:
            last = -1
            for i in suspects.tolist():
                if prev_same[i] >= max(int(run_start[i]), last):
                    start[i] = True
                    last = i
        row = np.cumsum(start) - 1
        first = np.flatnonzero(start)
        nrows = first.shape[0]
        columns: dict[str, Column] = {}
        sorted_tags = tags[order]
        bounds = np.flatnonzero(np.diff(sorted_tags)) + 1
        # columns in order of first appearance (the sort is stable: seg[0] is the first)
        for seg in sorted(np.split(order, bounds), key=lambda g: int(g[0])):
            tid = int(e.tags[seg[0]])
            values = np.full(nrows, np.nan)
            r = row[seg]
            values[r] = e.values[seg]
            if seg.shape[0] == nrows:
                present = None
            else:
                present = np.zeros(nrows, np.bool_)
                present[r] = True
            columns[self._tag_names[tid]] = Column(values, present)
        return ColumnBatch(e.steps[first], e.times[first], columns), carry


# one-element tensors as writers encode them, read as little-endian words:
# 08 01 2a 04 <f32>: dtype DT_FLOAT, float_val packed (4 bytes); 08 02 32 08 <f64>: DT_DOUBLE;
# either with an empty tensor_shape (12 00) after the dtype (tensorboard's own writer)
_T_F32 = 0x042A0108
_T_F64 = 0x08320208
_T_F32_SHAPED = (0x00120108, 0x042A)
_T_F64_SHAPED = (0x00120208, 0x0832)
_META = b"\x0a\x09\x0a\x07scalars"  # plugin_data { plugin_name: "scalars" }
_META_W0 = np.uint64(int.from_bytes(_META[:8], "little"))
_META_W1 = np.uint32(int.from_bytes(_META[7:11], "little"))


def _tensor_layout(
    v: tr.ByteView, u: np.ndarray, vend: np.ndarray, cand: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For values whose field at `u` is a tensor (42 <tl> ...) and that end at `vend`: which
    are one-element float/double tensors followed by nothing or by exactly "scalars" metadata
    (optionally with data_class scalar, 20 01), where their value's bytes are, and which are
    doubles."""
    b = v.b
    tl = b[u + 1].astype(np.int64)
    ts = u + 2
    after = ts + tl
    head = v.u32[ts]
    tail = v.u16[ts + 4]
    # the tensor's length: 4 header bytes (+ 2 for the shape) + the value's 4 or 8
    f32 = ((tl == 8) & (head == _T_F32)) | (
        (tl == 10) & (head == _T_F32_SHAPED[0]) & (tail == _T_F32_SHAPED[1])
    )
    f64 = ((tl == 12) & (head == _T_F64)) | (
        (tl == 14) & (head == _T_F64_SHAPED[0]) & (tail == _T_F64_SHAPED[1])
    )
    ml = b[after + 1].astype(np.int64)
    meta = (
        (b[after] == 0x4A)
        & (v.u64[after + 2] == _META_W0)
        & (v.u32[after + 9] == _META_W1)
        & (
            ((ml == 11) & (after + 13 == vend))
            | (
                (ml == 13)
                & (b[after + 13] == 0x20)
                & (b[after + 14] == 0x01)
                & (after + 15 == vend)
            )
        )
    )
    ok = cand & (f32 | f64) & ((after == vend) | meta)
    vpos = ts + np.where((tl == 8) | (tl == 12), 4, 6)
    return ok, vpos, f64


def _tensor_scalar(t: tensor_pb2.TensorProto) -> float | None:
    """The value of a one-element float tensor, else None."""
    field_name = _FLOAT_DTYPES.get(t.dtype)
    if field_name is None:
        return None
    if math.prod(d.size for d in t.tensor_shape.dim) != 1:
        return None
    raw: float | int
    if t.tensor_content:
        dtype = _CONTENT_DTYPES[t.dtype]
        if len(t.tensor_content) != dtype.itemsize:  # not one element (or torn): no scalar
            return None
        raw = np.frombuffer(t.tensor_content, dtype)[0].item()
    else:
        vals = getattr(t, field_name)
        if not len(vals):
            return None
        raw = vals[0]
    if t.dtype == types_pb2.DT_HALF:  # half_val holds the 16 bits in an int32
        return float(np.array([int(raw)], np.uint16).view(np.float16)[0])
    if t.dtype == types_pb2.DT_BFLOAT16:  # the high half of a float32
        return float(np.array([int(raw) << 16], np.uint32).view(np.float32)[0])
    return float(raw)
