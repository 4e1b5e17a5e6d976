"""FileTail: read what a file gained since the last call, in bytes, in bounded pieces.

Every read opens the file through `safe_io.open_regular` (O_NONBLOCK | O_NOFOLLOW, fstat on the
descriptor, regular files only: a FIFO, a device or a symlink planted under the log's name is an
error for this file, never a hang, issue 14) and reads with `pread` from a remembered offset.
Whether the file was replaced is judged from the fstat of the descriptor read from (no
stat-then-open race): a new inode (rsync without --inplace, delete-then-recreate) or a size
below the offset (`truncate -s 0`) means it is read again from its start and the caller is
told (`reset`); a file that vanished is reported, and read again when it comes back.

What callers get is whole and bounded:
- `lines()` hands out complete lines (a partial last line waits for its newline, read again
  from the file next time), at most about `max_bytes` per call (`more` says there is more), so a
  5 GB append never lands in memory at once;
- a line longer than MAX_LINE is skipped by scanning for the next newline chunk by chunk,
  never buffered: a 1 GB line costs O(CHUNK) memory;
- NUL bytes carry nothing in a text log (NFS zero-fills a file before its data lands, and a
  sparse file is all zeros): they are dropped as they are read and counted (`nul`); a run of
  zeros with no data in it longer than NUL_HOLD is given up on for good, so a 5 GB hole is
  scanned once, not on every poll;
- `read_bytes(limit)` (binary callers) returns at most `limit` bytes.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from pathlib import Path

from tui.logs.safe_io import UnsafeFile, open_regular

CHUNK = 1024 * 1024  # one pread
MAX_LINE = 16 * 1024 * 1024  # a "line" longer than this is skipped, never buffered whole
WINDOW = 32 * 1024 * 1024  # complete lines handed out by one lines() call, at most about
NUL_HOLD = 1024 * 1024  # zeros (and nothing else) past this are not waited on for data
_ZEROS = bytes(CHUNK)


@dataclass
class TailRead:
    data: bytes  # new complete content (for lines(): ends with b"\n", or empty)
    reset: bool = False  # the file was replaced or shrank: data starts at its beginning
    missing: bool = False  # the file is gone (or cannot be opened): `error` says why
    error: str | None = None
    skipped: int = 0  # bytes dropped because a line exceeded MAX_LINE
    nul: int = 0  # NUL bytes dropped (lines() only)
    nul_at: int = -1  # the file offset of the first of them
    more: bool = False  # stopped at max_bytes: the file holds more complete lines


def _without_nul(chunk: bytes) -> tuple[bytes, int]:
    """chunk without its NUL bytes, and how many there were (memchr-fast when none)."""
    if chunk.find(b"\0") < 0:
        return chunk, 0
    n = len(chunk)
    if chunk == (_ZEROS if n == CHUNK else bytes(n)):
        return b"", n
    kept = chunk.replace(b"\0", b"")
    return kept, len(chunk) - len(kept)


def _hole_end(fd: int, pos: int, size: int) -> int:
    """Where the data after `pos` starts (`pos` itself when it is data, `size` when only a
    hole follows); `pos` where the filesystem cannot tell (no SEEK_DATA)."""
    seek_data = getattr(os, "SEEK_DATA", None)
    if seek_data is None:
        return pos
    try:
        return min(os.lseek(fd, pos, seek_data), size)
    except OSError as exc:
        return size if exc.errno == errno.ENXIO else pos


class FileTail:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.offset = 0  # bytes consumed (handed out or skipped)
        self._ident: tuple[int, int] | None = None  # (st_dev, st_ino)
        self._discarding = False  # inside an over-long line: drop until its newline
        self._lost = False  # the file vanished: when it is back, it is a new file

    def _open(self) -> tuple[int, int, bool] | TailRead:
        """(descriptor, size, replaced) of the file now at the path, or a TailRead saying why
        it cannot be read."""
        try:
            fd, st = open_regular(self.path)
        except UnsafeFile as exc:
            self._lost = self._ident is not None
            why = "file not found" if exc.errno == errno.ENOENT else exc.reason
            return TailRead(b"", missing=True, error=f"{self.path}: {why}")
        ident = (st.st_dev, st.st_ino)
        replaced = self._ident is not None and (
            self._lost or ident != self._ident or st.st_size < self.offset
        )
        self._lost = False
        if replaced:
            self.offset = 0
            self._discarding = False
        self._ident = ident
        return fd, st.st_size, replaced

    def read_bytes(self, limit: int | None = None) -> TailRead:
        """New bytes since `offset` (up to `limit`, or MAX_LINE when none is given), whole or
        not; callers mark what they used with `consume`."""
        opened = self._open()
        if isinstance(opened, TailRead):
            return opened
        fd, size, reset = opened
        try:
            want = min(MAX_LINE if limit is None else limit, size - self.offset)
            if want <= 0:
                return TailRead(b"", reset=reset)
            parts: list[bytes] = []
            at = self.offset
            while want > 0:
                piece = os.pread(fd, want, at)
                if not piece:
                    break
                parts.append(piece)
                at += len(piece)
                want -= len(piece)
            return TailRead(b"".join(parts), reset=reset)
        except OSError as exc:
            return TailRead(b"", reset=reset, missing=True, error=f"{self.path}: {exc.strerror}")
        finally:
            os.close(fd)

    def consume(self, n: int) -> None:
        """Binary callers: mark n bytes (from `offset`) as used."""
        self.offset += n

    def lines(self, max_bytes: int = WINDOW) -> TailRead:
        """New complete lines (bytes ending in b"\\n", NUL bytes removed), about `max_bytes`
        at most. A partial last line is not kept in memory: it is read again from the file next
        time, so bytes that change under us (an NFS client extends a file with zeros before the
        data lands) are seen as they end up."""
        opened = self._open()
        if isinstance(opened, TailRead):
            return opened
        fd, size, reset = opened
        try:
            return self._lines(fd, size, reset, max_bytes)
        except OSError as exc:
            return TailRead(b"", reset=reset, missing=True, error=f"{self.path}: {exc.strerror}")
        finally:
            os.close(fd)

    def _lines(self, fd: int, size: int, reset: bool, max_bytes: int) -> TailRead:
        out: list[bytes] = []  # complete lines, NULs removed
        handed = 0
        skipped = 0
        nul, nul_at = 0, -1  # zeros in what is consumed
        partial: list[bytes] = []  # the current line so far (not consumed), NULs removed
        plen = 0
        pnul, pnul_at = 0, -1  # zeros in the current line so far
        pos = consumed = self.offset
        more = False

        def note_zeros(count: int, at: int) -> None:
            nonlocal pnul, pnul_at
            if count and pnul_at < 0:
                pnul_at = at
            pnul += count

        zeros_before = False  # the last chunk was all zeros: maybe a hole of a sparse file
        while pos < size:
            if handed >= max_bytes:
                more = True
                break
            if zeros_before:
                # a hole reads as zeros but costs a page-cache fill per page: hop over it
                hole = _hole_end(fd, pos, size) - pos
                if hole > 0:
                    if self._discarding:
                        skipped += hole
                        consumed = pos + hole
                    else:
                        note_zeros(hole, pos)
                    pos += hole
                    if not self._discarding and plen == 0 and pnul > NUL_HOLD:
                        nul_at = pnul_at if nul_at < 0 else nul_at
                        nul += pnul
                        pnul, pnul_at = 0, -1
                        consumed = pos
                    continue
            chunk = os.pread(fd, min(CHUNK, size - pos), pos)
            if not chunk:
                break
            cstart = pos
            pos += len(chunk)
            zeros_before = False
            if self._discarding:
                nl = chunk.find(b"\n")
                if nl < 0:
                    skipped += len(chunk)
                    consumed = pos
                    zeros_before = len(chunk) == CHUNK and chunk == _ZEROS
                    continue
                skipped += nl + 1
                consumed = cstart = cstart + nl + 1
                chunk = chunk[nl + 1 :]
                self._discarding = False
            last_nl = chunk.rfind(b"\n")
            rest = chunk
            if last_nl >= 0:
                # the current line ends here, maybe with more complete lines after it
                head, zeros = _without_nul(chunk[: last_nl + 1])
                note_zeros(zeros, cstart + chunk.find(b"\0"))
                out.extend(partial)
                out.append(head)
                handed += plen + len(head)
                if pnul:
                    nul_at = pnul_at if nul_at < 0 else nul_at
                    nul += pnul
                partial, plen, pnul, pnul_at = [], 0, 0, -1
                consumed = cstart + last_nl + 1
                rest = chunk[last_nl + 1 :]
                cstart = consumed
            if not rest:
                continue
            kept, zeros = _without_nul(rest)
            note_zeros(zeros, cstart + rest.find(b"\0"))
            zeros_before = not kept
            if kept:
                partial.append(kept)
                plen += len(kept)
            if plen > MAX_LINE:
                # an endless line: skip it, never buffer it (its zeros count as skipped too)
                skipped += plen + pnul
                partial, plen, pnul, pnul_at = [], 0, 0, -1
                consumed = pos
                self._discarding = True
            elif plen == 0 and pnul > NUL_HOLD:
                # nothing but zeros, more than a lagging NFS client writes ahead (a sparse
                # file): given up on for good, so the hole is scanned once, not every poll
                nul_at = pnul_at if nul_at < 0 else nul_at
                nul += pnul
                pnul, pnul_at = 0, -1
                consumed = pos
        self.offset = consumed
        return TailRead(
            b"".join(out), reset=reset, skipped=skipped, nul=nul, nul_at=nul_at, more=more
        )
