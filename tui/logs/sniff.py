"""What a file found in a tree holds, from its first bytes (issue 15: sniff content, not only
names).

Two questions discovery cannot answer from a name:

- Is this `.json` file JSON lines (one record per line: detectron2's `metrics.json`, mmengine's
  `vis_data/scalars.json` and `<timestamp>.json`, Ray Tune's `result.json`) or one JSON document
  (a pretty-printed summary, a COCO annotation file)? Only the first is a log.
- Is this a Git LFS pointer (a ~130-byte text file standing in for the real one after a clone
  without `git lfs pull`)? Read as a log it would be "bad length crc" or "half-written JSON".

Every file is opened through safe_io (O_NONBLOCK | O_NOFOLLOW, regular files only) and only its
head is read: a FIFO, a device or a 5 GB file costs nothing here. Answers are cached by the
file's identity and size, so a walk repeated every poll re-reads nothing that did not change.
"""

from __future__ import annotations

import json
import os

from tui.logs.safe_io import UnsafeFile, open_regular
from tui.logs.values import STEP_KEYS

HEAD_BYTES = 64 * 1024
LFS_MAX_BYTES = 1024  # a pointer file is about 130 bytes
CSV_HEAD_BYTES = 8 * 1024  # a CSV's header line
_LFS_MAGIC = b"version https://git-lfs.github.com/spec/"
LFS_MESSAGE = "an LFS pointer, not the file: run `git lfs pull`"
NOT_A_LOG = "not a recognised log"

_cache: dict[tuple[int, int, int, int], str | None] = {}
_csv_ok: set[tuple[int, int]] = set()  # CSV / trainer_state files found to be logs
_jsonl: set[tuple[int, int]] = set()  # (st_dev, st_ino) once seen as JSON lines: a growing
# log changes size every poll, and stays JSON lines
_CACHE_MAX = 20_000


def _head(path: str | os.PathLike[str], limit: int) -> bytes:
    fd, _ = open_regular(path)
    try:
        return os.read(fd, limit)
    finally:
        os.close(fd)


def is_lfs_pointer(data: bytes) -> bool:
    return data.startswith(_LFS_MAGIC)


def _json_lines_verdict(data: bytes, whole: bool) -> str | None:
    """ "jsonl" when the head reads as JSON lines of records, None while it is too short to
    tell (an empty file a live run has just created), else the reason it is not a log."""
    lines = data.split(b"\n")
    if not whole:
        lines = lines[:-1]  # the last line may be cut by the head
    records = 0
    has_step = False
    seen = 0
    for raw in lines:
        raw = raw.strip()
        if not raw:
            continue
        seen += 1
        if seen > 8:
            break
        try:
            obj = json.loads(raw)
        except (ValueError, RecursionError):
            if records == 0:
                return f"{NOT_A_LOG} (one JSON document, not JSON lines)"
            continue  # a damaged line in a log: the reader reports it
        if not isinstance(obj, dict):
            if records == 0:
                return f"{NOT_A_LOG} (JSON lines, but not of records)"
            continue
        if any(isinstance(v, int | float) and not isinstance(v, bool) for v in obj.values()):
            records += 1
            has_step = has_step or any(k in obj for k in STEP_KEYS)
    if records >= 2 or (records == 1 and has_step):
        return "jsonl"
    if seen == 0:
        return None
    if records == 1 and whole:
        return f"{NOT_A_LOG} (one record without a step: a summary, not a log)"
    if records == 0:
        return f"{NOT_A_LOG} (no numeric values)"
    return None  # one record so far, the file may grow


def _csv_verdict(data: bytes) -> str | None:
    """A CSV whose header is mostly empty cells is a spreadsheet (a bookkeeping sheet named
    progress.csv), not a logger's file: every logger names its columns."""
    header = data.split(b"\n", 1)[0].strip(b"\r")
    cells = [c.strip().strip(b'"') for c in header.split(b",")]
    if len(cells) >= 3 and sum(1 for c in cells if not c) * 2 > len(cells):
        return f"{NOT_A_LOG} (a spreadsheet: most header cells are empty)"
    return None


def _state_verdict(data: bytes, whole: bool) -> str | None:
    """A trainer_state.json names `global_step` and `log_history` near its start (the Trainer
    sorts its keys); a file of that name holding neither is someone else's state."""
    if b'"log_history"' in data or b'"global_step"' in data:
        return None
    if not data.strip():
        return None  # being written
    if whole or len(data) >= HEAD_BYTES:
        return f"{NOT_A_LOG} (a trainer_state.json without global_step or log_history)"
    return None


def sniff(
    path: str | os.PathLike[str],
    size: int,
    ident: tuple[int, int, int],
    *,
    json_log: bool,
    csv_log: bool = False,
    state_log: bool = False,
) -> str | None:
    """For a file discovery found: "jsonl" (a `.json` file that is JSON lines), "lfs" (a Git
    LFS pointer), None (nothing to say: read it as its name says, or not yet decidable), or a
    reason it is no log. `json_log`: the file is a `.json` log candidate; `csv_log`: a CSV
    log by its name, whose header is checked. `ident` is (st_dev, st_ino, st_mtime_ns) from
    the directory walk's stat."""
    if not (json_log or csv_log or state_log) and size > LFS_MAX_BYTES:
        return None  # too large for a pointer; a log by its name
    if (csv_log or state_log) and ident[:2] in _csv_ok:
        return None
    if json_log and ident[:2] in _jsonl:
        return "jsonl"
    key = (*ident, size)
    if key in _cache:
        return _cache[key]
    limit = LFS_MAX_BYTES
    if json_log or state_log:
        limit = HEAD_BYTES
    elif csv_log:
        limit = CSV_HEAD_BYTES
    try:
        data = _head(path, limit)
    except UnsafeFile as exc:
        return f"{exc.reason}"
    if is_lfs_pointer(data):
        verdict: str | None = "lfs"
    elif json_log:
        verdict = _json_lines_verdict(data, whole=len(data) < HEAD_BYTES)
    elif csv_log and b"\n" in data:
        verdict = _csv_verdict(data)
        if verdict is None:
            _csv_ok.add(ident[:2])
    elif state_log:
        verdict = _state_verdict(data, whole=len(data) < limit)
        if verdict is None and data.strip():
            _csv_ok.add(ident[:2])
    else:
        verdict = None
    if len(_cache) >= _CACHE_MAX:
        _cache.clear()
    if len(_jsonl) >= _CACHE_MAX:
        _jsonl.clear()
    if len(_csv_ok) >= _CACHE_MAX:
        _csv_ok.clear()
    if verdict == "jsonl":
        _jsonl.add(ident[:2])
    else:
        _cache[key] = verdict
    return verdict
