"""FileTail: read what a file gained since the last call, in bytes (toolong's way).

The file is opened `rb` and read in 64 KiB chunks from a remembered offset. What callers get
is whole: complete lines for text formats (a partial last line waits for its newline), whatever
a binary caller asks for otherwise. A file that shrinks or whose inode changes (rsync without
--inplace, delete-then-recreate, `truncate -s 0`) is read again from its start and the caller is
told (`reset`), so it can re-read cleanly; a file that vanished is reported, and read again when
it comes back.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHUNK = 64 * 1024
MAX_LINE = 16 * 1024 * 1024  # a "line" longer than this is refused, never buffered whole


@dataclass
class TailRead:
    data: bytes  # new complete content (for lines(): ends with b"\n", or empty)
    reset: bool = False  # the file was replaced or shrank: data starts at its beginning
    missing: bool = False  # the file is gone (or cannot be opened): `error` says why
    error: str | None = None
    skipped: int = 0  # bytes dropped because a line exceeded MAX_LINE


class FileTail:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offset = 0  # bytes consumed (handed out or skipped)
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino)
        self._discarding = False  # inside an over-long line: drop until its newline
        self._lost = False  # the file vanished: when it is back, it is a new file

    def _stat(self) -> os.stat_result | None:
        try:
            return os.stat(self.path)
        except OSError:
            return None

    def _check_replaced(self) -> tuple[bool, os.stat_result | None]:
        st = self._stat()
        if st is None:
            return False, None
        ident = (st.st_dev, st.st_ino)
        replaced = self._ident is not None and (
            self._lost or ident != self._ident or st.st_size < self.offset
        )
        self._lost = False
        if replaced:
            self.offset = 0
            self._discarding = False
        self._ident = ident
        return replaced, st

    def read_bytes(self, limit: int | None = None) -> TailRead:
        """All new bytes (up to `limit`) since the last call, whole or not."""
        reset, st = self._check_replaced()
        if st is None:
            self._lost = self._ident is not None
            return TailRead(b"", missing=True, error=f"{self.path}: file not found")
        start = self.offset
        if st.st_size <= start:
            return TailRead(b"", reset=reset)
        try:
            with open(self.path, "rb") as fh:
                fh.seek(start)
                want = st.st_size - start if limit is None else min(limit, st.st_size - start)
                data = fh.read(want)
        except OSError as exc:
            return TailRead(b"", reset=reset, missing=True, error=f"{self.path}: {exc.strerror}")
        return TailRead(data, reset=reset)

    def consume(self, n: int) -> None:
        """Binary callers: mark n bytes (from `offset`) as used."""
        self.offset += n

    def lines(self) -> TailRead:
        """New complete lines (bytes ending in b"\n"). A partial last line is not kept in
        memory: it is read again from the file next time, so bytes that change under us (an
        NFS client extends a file with zeros before the data lands) are seen as they end up."""
        got = self.read_bytes()
        if got.missing or not got.data:
            return got
        data = got.data
        skipped = 0
        if self._discarding:
            nl = data.find(b"\n")
            if nl < 0:
                self.offset += len(data)
                return TailRead(b"", reset=got.reset, skipped=len(data))
            skipped = nl + 1
            self.offset += skipped
            data = data[skipped:]
            self._discarding = False
        cut = data.rfind(b"\n") + 1
        complete, rest = data[:cut], data[cut:]
        self.offset += cut
        if len(rest) > MAX_LINE:
            # an endless line: drop it without keeping it in memory
            self.offset += len(rest)
            skipped += len(rest)
            self._discarding = True
        return TailRead(complete, reset=got.reset, skipped=skipped)
