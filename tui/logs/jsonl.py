"""JSONL reader: one JSON object per line, any keys, evaluation rows mixed in.

Speed (>= 1,000,000 lines/s) comes from handing each read's complete lines to Arrow's
multi-threaded JSON parser in one call, which yields columns directly. Two things a strict
parser rejects are dealt with around it:

- Python's json writes non-finite floats as the bare tokens `NaN`, `Infinity`, `-Infinity`.
  Before parsing, those byte strings are replaced by sentinel float literals (`_NAN_LIT`,
  `_INF_LIT`), mapped back to nan/inf in the parsed columns. A plain bytes.replace is used, not a
  tokenizer: inside a string value the replacement only changes a string that is skipped anyway,
  and a key containing the word is mapped back by name.
- Damage (garbage, bad UTF-8, a line that is no object, a field whose type changes) makes Arrow
  reject its whole input. The lines are then retried in 1 MiB blocks, and a failing block line
  by line (orjson, then json for what orjson refuses, e.g. integers beyond 64 bits); each bad
  line is one error entry (rate-limited) and every good line is kept.

NUL bytes (zero-filled blocks seen on NFS, a sparse file) are removed before parsing (FileTail
drops them as it reads), with one error entry, so that a record written after a NUL block is
kept.

Bounded (issue 14): a read takes the file in windows of complete lines (FileTail.lines), parses
each and keeps only its columns, superseded rows dropped as they pile up (BatchAccumulator):
a 5 GB append never lands in memory at once, a 1 GB line is skipped without being buffered.
A line nested too deeply for the parsers is one skipped line, like any other bad line.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.json as pj

from tui.logs.batch import BatchAccumulator, ColumnBatch
from tui.logs.reader import ReadResult
from tui.logs.tail import FileTail, TailRead
from tui.logs.values import (
    TIME_KEYS,
    ErrorLog,
    StepFiller,
    Values,
    arrow_numeric,
    build_batch,
    columns_from_dicts,
    concat_values,
)

# Sentinels: exact binary64 values no training metric will ever hold; short literals that
# every correctly-rounding parser maps onto the same double as Python's float().
_NAN_LIT = b"1.414213562e-299"
_INF_LIT = b"2.718281828e-299"
_NAN_SENTINEL = float(_NAN_LIT)
_INF_SENTINEL = float(_INF_LIT)

_ARROW_BLOCK = 16 << 20  # Arrow's unit of parallel work; larger blocks parse faster here
_RETRY_BLOCK = 1 << 20  # after a failure, the size of the pieces retried with Arrow


class JsonlReader:
    """Incremental reader of a JSONL metrics file (`format = "jsonl"`).

    `read()` returns the complete lines appended since the previous call as a ColumnBatch
    keyed by the file's own field names. A partial last line waits for its newline. A file
    that shrinks or is replaced is read again from its start (`reset=True`); a file that
    vanishes or cannot be opened gives one error entry (not repeated while it stays so).
    """

    format = "jsonl"

    def __init__(self, path: str | os.PathLike[str], *, max_errors: int = 5) -> None:
        self.path = Path(path)
        self.max_errors = max_errors
        self.missing = False  # the file is gone or unreadable (reported once)
        self._tail = FileTail(self.path)
        self._steps = StepFiller()

    def read(self) -> ReadResult:
        errors = ErrorLog(self.path, self.max_errors)
        acc = BatchAccumulator()
        reset = False
        skipped = nul = 0
        nul_at = -1
        while True:
            got = self._tail.lines()
            if got.reset:  # what this call gathered is of the file's old content
                self._steps = StepFiller()
                acc = BatchAccumulator()
                reset = True
            if got.missing:
                if not self.missing:
                    errors.add(got.error or "cannot be read")
                self.missing = True
                break
            self.missing = False
            skipped += got.skipped
            if got.nul:
                nul_at = got.nul_at if nul_at < 0 else nul_at
                nul += got.nul
            if got.data:
                acc.add(self._parse(got, errors))
            if not got.more:
                break
        if skipped:
            errors.add(f"over-long line ({skipped} bytes) skipped")
        if nul:
            errors.add(f"{nul} NUL bytes skipped (from byte {nul_at})")
        batch = acc.result()
        batch.reset = reset
        return ReadResult(batch, errors.result(), reset)

    def _parse(self, got: TailRead, errors: ErrorLog) -> ColumnBatch:
        data = got.data
        # byte offsets, not line numbers, name bad lines (counting newlines costs a pass); with
        # NULs or a long line taken out they would mislead
        offset = -1 if got.nul or got.skipped else self._tail.offset - len(data)
        columns, times, n = parse_lines(data, errors, offset)
        return build_batch(columns, n, self._steps, time_columns=times)


def parse_lines(
    data: bytes, errors: ErrorLog, offset: int = 0
) -> tuple[dict[str, Values], dict[str, Values], int]:
    """Complete JSONL lines -> (numeric columns, time columns, row count).

    Only objects become rows; everything else is an error entry naming its byte offset
    (`offset` is where data starts in the file).
    """
    # single-byte finds are memchr-fast; the exact (slower) search runs only when they hit
    nul = data.find(b"\x00")
    if nul >= 0:
        errors.add(f"{data.count(0)} NUL bytes skipped (from byte {offset + nul})")
        data = data.replace(b"\x00", b"")
        offset = -1  # offsets no longer match the file's
    substituted = False
    if data.find(b"N") >= 0 and b"NaN" in data:
        data = data.replace(b"NaN", _NAN_LIT)
        substituted = True
        offset = -1
    if data.find(b"I") >= 0 and b"Infinity" in data:
        data = data.replace(b"Infinity", _INF_LIT)
        substituted = True
        offset = -1

    parts: list[tuple[dict[str, Values], dict[str, Values], int]] = []
    whole = _parse_arrow(data)
    if whole is not None:
        parts.append(whole)
    else:
        at = offset
        for block in _blocks(data, _RETRY_BLOCK):
            got = _parse_arrow(block)
            if got is None:
                got = _parse_per_line(block, errors, at)
            parts.append(got)
            at = at + len(block) if at >= 0 else at

    columns, n = concat_values([(p[0], p[2]) for p in parts])
    times, _ = concat_values([(p[1], p[2]) for p in parts])
    if substituted:
        columns = {_unsentinel_name(k): _unsentinel(v) for k, v in columns.items()}
        times = {_unsentinel_name(k): _unsentinel(v) for k, v in times.items()}
    return columns, times, n


def _blocks(data: bytes, size: int) -> list[bytes]:
    """data cut into pieces of about `size` bytes, each ending at a newline."""
    out: list[bytes] = []
    start = 0
    while start < len(data):
        end = data.find(b"\n", min(start + size, len(data)) - 1)
        end = len(data) if end < 0 else end + 1
        out.append(data[start:end])
        start = end
    return out


def _parse_arrow(data: bytes) -> tuple[dict[str, Values], dict[str, Values], int] | None:
    """Arrow's parser over whole lines; None when it rejects anything in them."""
    try:
        table = pj.read_json(
            pa.BufferReader(data),
            read_options=pj.ReadOptions(block_size=_ARROW_BLOCK),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError):
        return None
    except (MemoryError, RecursionError):  # nesting Arrow refuses to build: line by line
        return None
    columns: dict[str, Values] = {}
    times: dict[str, Values] = {}
    for name, col in zip(table.column_names, table.columns, strict=True):
        got = arrow_numeric(col)
        if got is not None:
            columns[name] = got
        if name in TIME_KEYS:
            t = arrow_numeric(col, as_time=True)
            if t is not None:
                times[name] = t
    return columns, times, table.num_rows


def _parse_per_line(
    data: bytes, errors: ErrorLog, offset: int
) -> tuple[dict[str, Values], dict[str, Values], int]:
    """The slow path: each line on its own; bad lines become error entries.

    `offset` is data's byte offset in the file, or -1 when data was rewritten (NULs removed,
    non-finite tokens substituted) and offsets would mislead: lines are then counted instead.
    """
    rows: list[dict[str, object]] = []
    at = offset
    for i, raw in enumerate(data.split(b"\n")):
        where = f"byte {at}" if offset >= 0 else f"line {i + 1} of this read"
        at += len(raw) + 1
        line = raw.strip()
        if not line:
            continue
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            try:
                obj = json.loads(line)  # integers beyond 64 bits and other oddities
            except RecursionError:
                errors.add(f"{where}: nested too deeply to parse: {_snippet(raw)}")
                continue
            except (ValueError, MemoryError):
                errors.add(f"{where}: not valid JSON: {_snippet(raw)}")
                continue
        if not isinstance(obj, dict):
            errors.add(f"{where}: not a JSON object: {_snippet(raw)}")
            continue
        rows.append(obj)
    columns = columns_from_dicts(rows)
    times: dict[str, Values] = {}
    for key in TIME_KEYS:
        if key in columns:
            times[key] = columns[key]
        elif any(isinstance(r.get(key), str) for r in rows):
            # an ISO 8601 wall time; Arrow's fast path infers the same
            times[key] = _iso_times([r.get(key) for r in rows])
    return columns, times, len(rows)


def _iso_times(cells: list[object]) -> Values:
    values = np.full(len(cells), np.nan)
    present = np.zeros(len(cells), np.bool_)
    for i, cell in enumerate(cells):
        if isinstance(cell, str):
            try:
                stamp = datetime.fromisoformat(cell)
            except ValueError:
                continue
            if stamp.tzinfo is None:
                stamp = stamp.replace(tzinfo=UTC)  # as Arrow reads a naive timestamp
            values[i] = stamp.timestamp()
            present[i] = True
    return values, present


def _unsentinel(col: Values) -> Values:
    values, present = col
    if values.dtype != np.float64:
        return col
    nan = values == _NAN_SENTINEL
    pos = values == _INF_SENTINEL
    neg = values == -_INF_SENTINEL
    if nan.any() or pos.any() or neg.any():
        values = values.copy()
        values[nan] = np.nan
        values[pos] = np.inf
        values[neg] = -np.inf
    return values, present


def _unsentinel_name(name: str) -> str:
    return name.replace(_NAN_LIT.decode(), "NaN").replace(_INF_LIT.decode(), "Infinity")


def _snippet(raw: bytes, limit: int = 60) -> str:
    text = raw[:limit].decode("utf-8", "backslashreplace")
    return repr(text + ("..." if len(raw) > limit else ""))
