"""CSV reader: a header line, then one row per line; PyTorch Lightning's `metrics.csv` included.

Lightning's CSVLogger writes sparse rows (a training row leaves `val_loss` empty), keeps the
header sorted, and when a new key appears it rewrites the WHOLE file in place (same inode,
usually larger) under a new header. FileTail cannot see that (nothing shrank, nothing was
replaced), so the reader remembers the header's bytes and compares them with the file's start
before and after each read; a different header means: read again from the start, `reset=True`.

Parsing is Arrow's multi-threaded CSV reader on the complete lines of each read, with the
remembered header given as column names, so it yields columns directly (>= 3,000,000 rows/s).
Only an empty cell is a hole: Arrow's default null spellings ("nan", "NULL", "N/A", ...) are
turned off, so `nan` / `inf` cells are values, as DESIGN.md wants.

Damage: a row with the wrong number of fields is skipped by Arrow's invalid-row handler; a
non-numeric cell in a numeric column (garbage, bad UTF-8, a half-written row) skips its row.
Each is an error entry (rate-limited), and every good row is kept. A column that holds no
numbers at all (a `phase` or `run_name` column) is simply not a metric.

Bounded (issue 14): a read takes the file in windows of complete lines (FileTail.lines, NUL
bytes dropped as read, a line past MAX_LINE skipped unbuffered), parses each and keeps only its
columns (BatchAccumulator drops superseded rows as they pile up). The header check reads the
file's start through safe_io: a FIFO or a symlink under the name is an error, never a hang.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from tui.logs.batch import BatchAccumulator, ColumnBatch
from tui.logs.reader import ReadResult
from tui.logs.safe_io import UnsafeFile, open_regular
from tui.logs.tail import FileTail, TailRead
from tui.logs.values import (
    TIME_KEYS,
    ErrorLog,
    StepFiller,
    Values,
    arrow_numeric,
    build_batch,
)

_ARROW_BLOCK = 4 << 20  # Arrow's unit of parallel work
_MAX_HEADER = 1 << 20  # a "header" longer than this is no CSV header
_MAX_HEADER_END = 2 << 20  # a header further into the file (after zeros) is not re-checked


class CsvReader:
    """Incremental reader of a CSV metrics file with a header (`format = "csv"`).

    `read()` returns the complete rows appended since the previous call as a ColumnBatch keyed
    by the header's names. A rewritten header (Lightning), a shrunk or replaced file is read
    again from its start (`reset=True`); a vanished or unreadable file is one error entry.
    """

    format = "csv"

    def __init__(self, path: str | os.PathLike[str], *, max_errors: int = 5) -> None:
        self.path = Path(path)
        self.max_errors = max_errors
        self.missing = False
        self._restart()

    def _restart(self) -> None:
        """Read the file from its start, knowing nothing of it (new reader, rewritten header)."""
        self._tail = FileTail(self.path)
        self._forget()

    def _forget(self) -> None:
        """Drop what was learnt from the file's content: its header, steps, numeric columns."""
        self._steps = StepFiller()
        self.header: list[str] | None = None  # column names, once the header line is complete
        self._header_raw: bytes | None = None  # the header line's bytes, newline included
        self._header_end = 0  # the file offset past the header line (NULs before it counted)
        self._numeric: set[str] = set()  # columns that held numbers: later text in them is damage

    def _file_start(self, size: int) -> bytes | None:
        """The file's first `size` bytes as they are now (None when it cannot be read: a
        vanished or refused file is FileTail's to report)."""
        try:
            fd, _ = open_regular(self.path)
        except UnsafeFile:
            return None
        try:
            return os.pread(fd, size, 0)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _header_unchanged(self) -> bool:
        """The file still starts with the header we read (True when it cannot be told)."""
        if self._header_raw is None or not self._header_end:
            return True
        head = self._file_start(self._header_end)
        if head is None:
            return True
        # a file cut shorter than its header is a truncation FileTail also sees; a rewrite in
        # progress may show part of the new header: either way the start is no longer ours
        return head.replace(b"\0", b"") == self._header_raw

    def _locate_header(self, window_start: int, got: TailRead, nl: int) -> None:
        """Where the header line ends in the file. Exact when nothing was taken out of the
        window; after NULs, found by reading the file's start again (bounded)."""
        assert self._header_raw is not None
        if not got.nul and not got.skipped:
            self._header_end = window_start + nl + 1
            return
        head = self._file_start(_MAX_HEADER_END)
        self._header_end = 0
        if head is None:
            return
        kept = 0
        want = len(self._header_raw)
        for i, byte in enumerate(head):  # short: a header line and the zeros before it
            if byte:
                kept += 1
                if kept == want:
                    self._header_end = i + 1
                    return

    def read(self) -> ReadResult:
        errors = ErrorLog(self.path, self.max_errors)
        acc = BatchAccumulator()
        reset = False
        skipped = nul = 0
        for _ in range(3):  # a rewrite racing the read: start over, a bounded number of times
            if not self._header_unchanged():
                self._restart()
                acc, reset = BatchAccumulator(), True
            raced = False
            while True:
                window_start = self._tail.offset
                got = self._tail.lines()
                if got.reset:  # FileTail already restarted from the file's start
                    self._forget()
                    acc, reset = BatchAccumulator(), True
                    window_start = 0
                if got.missing:
                    if not self.missing:
                        errors.add(got.error or "cannot be read")
                    self.missing = True
                    return ReadResult(acc.result(), errors.result(), reset)
                self.missing = False
                skipped += got.skipped
                nul += got.nul
                if got.data and not self._header_unchanged():
                    # rewritten while we read: what we got may mix the old and the new file
                    self._restart()
                    acc, reset, raced = BatchAccumulator(), True, True
                    break
                if got.data:
                    acc.add(self._window(got, window_start, errors))
                if not got.more:
                    break
            if not raced:
                break
        if skipped:
            errors.add(f"over-long line ({skipped} bytes) skipped")
        if nul:
            errors.add(f"{nul} NUL bytes skipped")
        batch = acc.result()
        batch.reset = reset
        return ReadResult(batch, errors.result(), reset)

    def _window(self, got: TailRead, window_start: int, errors: ErrorLog) -> ColumnBatch:
        """The rows of one window of complete lines (the header taken from the first)."""
        data = got.data
        start = 0
        if self._header_raw is None:
            start = self._take_header(data, errors)
            if self._header_raw is not None:
                self._locate_header(window_start, got, start - 1)
        if start >= len(data) or self.header is None:
            return ColumnBatch.empty()
        # a zero-copy view past the header: slicing bytes would copy the whole read
        columns, times, n = self._parse(memoryview(data)[start:], errors)
        return build_batch(columns, n, self._steps, time_columns=times)

    def _take_header(self, data: bytes, errors: ErrorLog) -> int:
        """Take the first non-blank line of data as the header; return where the rows start."""
        pos = 0
        while True:
            nl = data.find(b"\n", pos)
            if nl < 0:
                return len(data)  # only blank lines so far
            line = data[pos:nl].strip(b"\r\n\t \x00")
            if line:
                break
            pos = nl + 1
        self._header_raw = data[: nl + 1]
        text = line.decode("utf-8", "replace").lstrip("\ufeff")
        try:
            names = next(csv.reader([text]))
        except (csv.Error, StopIteration):
            names = []
        if not names or len(self._header_raw) > _MAX_HEADER:
            errors.add("no usable CSV header")
            names = []
        self.header = _dedupe([n.strip() for n in names])
        return nl + 1

    def _parse(
        self, view: memoryview, errors: ErrorLog
    ) -> tuple[dict[str, Values], dict[str, Values], int]:
        assert self.header is not None
        data: bytes | memoryview = view
        if view.obj.find(b"\x00") >= 0:  # type: ignore[attr-defined]  # memchr-fast
            raw = bytes(view)
            if b"\x00" in raw:
                errors.add(f"{raw.count(0)} NUL bytes skipped")
                data = raw.replace(b"\x00", b"")
        names = self.header
        # Rows are lines here (no cell spans a line). A stray quote would make Arrow read the
        # rest of the read as one quoted cell and lose every row after it, so reads holding a
        # quote go line by line: the damage then costs only its own row.
        quoted = (data.obj if isinstance(data, memoryview) else data).find(b'"') >= 0
        # Arrow cannot hand a row of bad UTF-8 to its invalid-row handler (it fails decoding
        # it first), so such reads go line by line too
        table = None if quoted or not _utf8(data) else _arrow_table(data, names, errors)
        if table is None:
            table = _python_table(data, names, errors)
        n = table.num_rows
        columns: dict[str, Values] = {}
        times: dict[str, Values] = {}
        bad = np.zeros(n, np.bool_)
        for name, col in zip(table.column_names, table.columns, strict=True):
            t = col.type
            if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_binary(t):
                got = self._text_column(name, col, bad, errors)
            else:
                got = arrow_numeric(col)
            if got is not None:
                columns[name] = got
                self._numeric.add(name)
            if name in TIME_KEYS:
                tv = arrow_numeric(col, as_time=True) if got is None else got
                if tv is not None:
                    times[name] = tv
        if bad.any():
            keep = ~bad
            columns = {k: _take(v, keep) for k, v in columns.items()}
            times = {k: _take(v, keep) for k, v in times.items()}
            n = int(keep.sum())
        return columns, times, n

    def _text_column(
        self, name: str, col: pa.ChunkedArray, bad: np.ndarray, errors: ErrorLog
    ) -> Values | None:
        """A column Arrow read as text: numbers with damage in a few rows, or no metric.

        It is numeric when it held numbers in an earlier read or when most of its non-empty
        cells are numbers; its other non-empty cells then mark their rows as damaged."""
        # as bytes: Arrow was told not to check UTF-8, so a "string" may hold bad bytes
        raw = pc.cast(col, pa.large_binary()).to_pylist()
        cells = [None if c is None else c.decode("utf-8", "replace") for c in raw]
        series = pd.Series(cells, dtype=object)
        values = pd.to_numeric(series, errors="coerce").to_numpy(np.float64)
        stripped = series.astype(str).str.strip()
        empty = series.isna().to_numpy() | (stripped == "").to_numpy()
        # "nan" parses to NaN like garbage does: tell them apart by spelling
        number = ~np.isnan(values) | stripped.str.lower().isin(["nan", "-nan", "+nan"]).to_numpy()
        number &= ~empty
        text = ~number & ~empty
        if not text.any():
            present = number
            return (values, None if present.all() else present) if present.any() else None
        if name not in self._numeric and number.sum() <= text.sum():
            return None  # a text column (names, phases): not a metric, not damage
        damaged = np.flatnonzero(text & ~bad)  # rows not already reported for another column
        for i in damaged[: errors.limit]:
            errors.add(f"row with non-numeric {name}={str(cells[i])[:40]!r} skipped")
        errors.dropped += max(len(damaged) - errors.limit, 0)
        bad |= text
        present = number
        return values, (None if present.all() else present)


def _utf8(data: bytes | memoryview) -> bool:
    # memoryview has no isascii(), and bytes(view) would copy the whole read: ask the bytes
    # it views (a superset, so all-ASCII there is all-ASCII here), decode only otherwise
    whole = data.obj if isinstance(data, memoryview) else data
    if whole.isascii():  # type: ignore[attr-defined]
        return True
    try:
        str(data, "utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _arrow_table(data: bytes | memoryview, names: list[str], errors: ErrorLog) -> pa.Table | None:
    """Arrow's CSV parser over complete rows; None if it fails as a whole."""
    invalid: list[str] = []

    def on_invalid(row: pcsv.InvalidRow) -> str:
        # called from Arrow's threads; list.append is atomic
        fields = f"{row.actual_columns} fields, header has {row.expected_columns}"
        invalid.append(f"row with {fields}: {row.text[:60]!r}")
        return "skip"

    try:
        table = pcsv.read_csv(
            pa.BufferReader(pa.py_buffer(data)),
            read_options=pcsv.ReadOptions(column_names=names, block_size=_ARROW_BLOCK),
            parse_options=pcsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(
                null_values=[""],
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
                check_utf8=False,
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, OSError):
        return None
    except MemoryError:  # too much at once for Arrow: row by row
        return None
    for message in invalid:
        errors.add(message)
    return table


def _python_table(data: bytes | memoryview, names: list[str], errors: ErrorLog) -> pa.Table:
    """The slow path: Python's csv module row by row, every cell kept as text."""
    width = len(names)
    cols: list[list[str | None]] = [[] for _ in names]
    text = bytes(data).decode("utf-8", "replace")
    for lineno, line in enumerate(text.split("\n"), 1):
        if not line.strip("\r\t "):
            continue
        try:
            row = next(csv.reader([line.rstrip("\r")]))
        except (csv.Error, StopIteration):
            errors.add(f"row {lineno} of this read: not CSV")
            continue
        if len(row) != width:
            errors.add(f"row with {len(row)} fields, header has {width}: {line[:60]!r}")
            continue
        for col, cell in zip(cols, row, strict=True):
            col.append(cell if cell != "" else None)
    return pa.table({f"c{i}": pa.array(c, pa.string()) for i, c in enumerate(cols)}).rename_columns(
        names
    )


def _take(col: Values, keep: np.ndarray) -> Values:
    values, present = col
    present = None if present is None else present[keep]
    if present is not None and present.all():
        present = None
    return values[keep], present


def _dedupe(names: list[str]) -> list[str]:
    """Unique column names (Arrow needs them): a repeated name gets `.1`, `.2`, ... as pandas."""
    seen: dict[str, int] = {}
    out: list[str] = []
    for name in names:
        if name in seen:
            seen[name] += 1
            out.append(f"{name}.{seen[name]}")
        else:
            seen[name] = 0
            out.append(name)
    return out
