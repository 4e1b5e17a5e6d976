"""TFRecord framing, as TensorBoard event files use it, checked in bulk with numpy.

A record is::

    uint64 length (little-endian) | uint32 masked_crc32c(length bytes)
    data[length]                  | uint32 masked_crc32c(data)

where masked(c) = rotate_right(c, 15) + 0xA282EAD8 (mod 2**32).

CRCs are checked for thousands of records at once: a C call per record (the `crc32c`
package) costs ~400 ns of Python overhead for a 40-byte event, more than decoding it. CRC32C is
affine in its input, so each record is read as 8-byte words and run through slicing-by-8 tables
(16-bit slices), one numpy step per word position across all records of that word count; the
`crc32c` package stays the reference (tests compare the two) and handles long records. The same
vectorised check of 12-byte headers scans a damaged stretch for the next valid header without a
Python step per byte.
"""

from __future__ import annotations

import struct
import threading

import crc32c as _crc32c_mod
import numpy as np

HEADER = 12  # length + length CRC
FOOTER = 4  # data CRC
OVERHEAD = HEADER + FOOTER
MASK_DELTA = 0xA282EAD8
# A declared length beyond this is refused before anything is allocated (a torn or corrupt
# header could otherwise make a reader wait for, or allocate, exabytes).
MAX_RECORD = 256 * 1024 * 1024

crc32c = _crc32c_mod.crc32c
_U64 = struct.Struct("<Q")
_U32 = struct.Struct("<I")


def masked_crc(data: bytes | memoryview) -> int:
    """The masked CRC32C TFRecord stores."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + MASK_DELTA) & 0xFFFFFFFF


def mask_array(crcs: np.ndarray) -> np.ndarray:
    """masked_crc for an array of raw CRC32C values (uint32 in, uint32 out)."""
    c = crcs.astype(np.uint32, copy=False)
    return ((c >> np.uint32(15)) | (c << np.uint32(17))) + np.uint32(MASK_DELTA)


def frame_record(data: bytes) -> bytes:
    """One framed record (writers in tests and benchmarks use it)."""
    head = _U64.pack(len(data))
    return head + _U32.pack(masked_crc(head)) + data + _U32.pack(masked_crc(data))


def _byte_tables() -> np.ndarray:
    """T[j][x]: the CRC32C register contribution (zero initial value) of byte x followed by j
    zero bytes, j < 8."""
    poly = 0x82F63B78
    t0 = np.zeros(256, np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ (poly if c & 1 else 0)
        t0[i] = c
    t = np.zeros((8, 256), np.uint32)
    t[0] = t0
    for j in range(1, 8):
        prev = t[j - 1]
        t[j] = (prev >> np.uint32(8)) ^ t0[prev & np.uint32(0xFF)]
    return t


def _word_tables() -> tuple[np.ndarray, ...]:
    """Slicing-by-8 with 16-bit slices: Q[i][v] is the contribution of the i-th 16-bit piece
    v of an 8-byte word (its first byte the low one) to the register after the word."""
    t = _byte_tables()
    v = np.arange(1 << 16)
    lo, hi = v & 0xFF, v >> 8
    # uint32 tables (256 KiB each: cache-friendlier than int64 ones, measured 2x faster)
    return tuple(t[7 - 2 * i][lo] ^ t[6 - 2 * i][hi] for i in range(4))


_Q0, _Q1, _Q2, _Q3 = _word_tables()
_ZERO_CRC: dict[int, int] = {}  # crc32c of n zero bytes: what the initial value adds
VECTOR_WORDS = 64  # records up to 512 bytes get vectorised CRCs; longer ones, one C call


def _zero_crc(n: int) -> int:
    z = _ZERO_CRC.get(n)
    if z is None:
        z = _ZERO_CRC[n] = crc32c(bytes(n))
    return z


def _raw_words(words: list[np.ndarray]) -> np.ndarray:
    """The zero-initialised CRC32C register after the given 8-byte words (int64 arrays, one
    per word position, all of the same shape); uint32 out. Indices stay int64 (intp):
    numpy gathers fastest with those."""
    r = words[0]
    for i, w in enumerate(words):
        x = w if i == 0 else r ^ w
        r = _Q0[x & 0xFFFF] ^ _Q1[(x >> 16) & 0xFFFF] ^ _Q2[(x >> 32) & 0xFFFF]
        r ^= _Q3[(x >> 48) & 0xFFFF]  # (>> on int64 copies the sign bit: masked off)
    return r


_local = threading.local()
_SCRATCH_KEEP = 8 * 1024 * 1024 + 4096  # a chunk's worth is kept per thread, not more


def _scratch(size: int) -> np.ndarray:
    """A byte array of `size` from a per-thread buffer: a fresh array for every chunk costs
    page faults that take longer than the copy itself. Valid until the thread's next call."""
    buf: np.ndarray | None = getattr(_local, "buf", None)
    if buf is not None and buf.shape[0] >= size:
        return buf[:size]
    arr = np.empty(size, np.uint8)
    if size <= _SCRATCH_KEEP:
        _local.buf = arr
    return arr


class ByteView:
    """A chunk of a file as numpy arrays: bytes, and little-endian words at *any* byte offset.

    The bytes are copied once into a zero-padded array, so that gathers a little past the end
    of the data (a speculative decode of a short record) stay in bounds; `u32[p]` etc. are
    strided views (stride 1) that read an unaligned word at each position in one gather.
    """

    PAD = 512

    def __init__(self, data: bytes) -> None:
        n = len(data)
        arr = _scratch(n + self.PAD)
        arr[:n] = np.frombuffer(data, np.uint8)
        arr[n:] = 0
        self.n = n
        self.b = arr
        size = arr.shape[0]
        self.u16 = np.ndarray((size - 1,), np.dtype("<u2"), arr, 0, (1,))
        self.u32 = np.ndarray((size - 3,), np.dtype("<u4"), arr, 0, (1,))
        self.u64 = np.ndarray((size - 7,), np.dtype("<u8"), arr, 0, (1,))
        self.i64 = np.ndarray((size - 7,), np.dtype("<i8"), arr, 0, (1,))
        self.f32 = np.ndarray((size - 3,), np.dtype("<f4"), arr, 0, (1,))
        self.f64 = np.ndarray((size - 7,), np.dtype("<f8"), arr, 0, (1,))


def header_crcs(v: ByteView, pos: np.ndarray) -> np.ndarray:
    """Masked CRC32C of the 8 bytes at each position of `pos`."""
    r = _raw_words([v.i64[pos]]) ^ _zero_crc(8)
    return mask_array(r.astype(np.uint32))


def data_crcs(v: ByteView, buf: bytes, start: np.ndarray, length: np.ndarray) -> np.ndarray:
    """Raw (unmasked) CRC32C of each span [start, start + length) of the data.

    CRC32C is affine: leading zero bytes do not change the zero-initialised register, and the
    standard initial value adds crc32c(n zero bytes) for an n-byte message. So each span is
    read as whole 8-byte words ending at its end (the bytes before its start masked to zero),
    spans of the same word count are processed together, one numpy step per word, and the
    initial value is added at the end. Long spans are left to the C implementation.
    """
    out = np.zeros(start.shape[0], np.uint32)
    words = (length + 7) // 8
    pad = words * 8 - length
    # a span whose first word would begin before the data goes to the C call as well
    words = np.where(start - pad < 0, VECTOR_WORDS + 1, words)
    counts = np.bincount(np.minimum(words, VECTOR_WORDS + 1), minlength=1)
    for w in np.flatnonzero(counts).tolist():
        sel = np.flatnonzero(words == w) if counts[w] < start.shape[0] else None
        if w > VECTOR_WORDS:
            sel = np.flatnonzero(words > VECTOR_WORDS)
            mv = memoryview(buf)
            out[sel] = [
                crc32c(mv[a : a + n])
                for a, n in zip(start[sel].tolist(), length[sel].tolist(), strict=True)
            ]
            continue
        if w == 0:
            continue  # crc32c of nothing is 0
        s = start if sel is None else start[sel]
        ln = length if sel is None else length[sel]
        first = s - (pad if sel is None else pad[sel])
        # the bytes before the span (the low ones of its first word) count as zeros
        keep = ~((np.int64(1) << (8 * (w * 8 - ln))) - 1)
        cols = [v.i64[first] & keep] + [v.i64[first + 8 * k] for k in range(1, w)]
        zero = np.array([_zero_crc(n) for n in range(8 * w - 7, 8 * w + 1)], np.uint32)
        r = _raw_words(cols) ^ zero[ln - (8 * w - 7)]
        if sel is None:
            out[:] = r
        else:
            out[sel] = r
    return out


def headers_ok(v: ByteView, pos: np.ndarray) -> np.ndarray:
    """Whether a valid header (length CRC matching, length within MAX_RECORD) starts at each
    position (each with HEADER bytes of data after it)."""
    return (header_crcs(v, pos) == v.u32[pos + 8]) & (v.u64[pos] <= np.uint64(MAX_RECORD))


def find_header(v: ByteView, start: int, window: int = 1 << 20) -> int:
    """The first position p >= start with a valid header wholly in the data, or -1. Scans
    `window` positions at a time, vectorised."""
    stop = v.n - HEADER + 1
    p = start
    while p < stop:
        q = min(stop, p + window)
        pos = np.arange(p, q, dtype=np.int64)
        hit = np.flatnonzero(headers_ok(v, pos))
        if hit.shape[0]:
            return int(pos[hit[0]])
        p = q
    return -1


def chain(v: ByteView, start: int, first_byte: int = 0x09) -> tuple[np.ndarray, np.ndarray]:
    """Records found without walking: (starts, ends), sorted, of the candidate records.

    Walking the chain of lengths costs a Python step per record. Instead, look at every
    position whose data would begin with `first_byte` (every Event starts with its wall_time,
    field 1, fixed64: 0x09) and keep those with a valid length CRC, a length under 64 KiB and
    the whole record in the data. True records are among them; a stray one (2**-32 per
    position) is harmless because callers only follow links `ends[i] == starts[i + 1]` from a
    position they know is a record start.
    """
    n = v.n
    if n - start <= HEADER:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    pos = np.flatnonzero(v.b[start + HEADER : n] == first_byte).astype(np.int64) + start
    length = v.u64[pos]
    small = length < np.uint64(1 << 16)
    pos, length = pos[small], length[small].astype(np.int64)
    end = pos + OVERHEAD + length
    whole = end <= n
    pos, end = pos[whole], end[whole]
    ok = header_crcs(v, pos) == v.u32[pos + 8]
    return pos[ok], end[ok]
