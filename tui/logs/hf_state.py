"""Hugging Face `trainer_state.json` reader: the points of its `log_history`.

The Trainer rewrites the whole file in place at every checkpoint (`open(path, "w")`, then one
`json.dumps`), so a read can meet it empty or half-written. The reader therefore keeps the last
copy that parsed and reports nothing new until the file parses again; only a file that has never
parsed is an error. Each parse is compared with what was already returned: when the old entries
are a prefix of the new `log_history`, only the entries beyond them are returned; otherwise (a
resumed run's history, an older checkpoint's file) every entry is returned again with
`reset=True`.

The last entry of a finished run is a summary (it holds `train_runtime`; its `train_loss` is the
mean over the whole run): it is not a point (DESIGN.md). The file's other top-level fields
(`max_steps`, `trial_params`, `num_train_epochs`, ...) are kept in `state_meta` for discovery
(trainer_state's `max_steps` is a run's `max_train_steps`).

The reader can follow either one file or a Trainer output folder: given a folder, each read
opens the newest `checkpoint-N/trainer_state.json` (see `newest_trainer_state`); since each
checkpoint's history is a prefix of the next one's, moving to a newer checkpoint returns only
the new entries. "Newest" is the highest `global_step`, never the latest file time: a copied or
touched old checkpoint must not hide the last steps (issue 15).

Files are opened through safe_io (no FIFO, device or symlink; `MAX_STATE_BYTES` cap).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import orjson

from tui.logs.reader import ReadResult
from tui.logs.safe_io import UnsafeFile, open_regular, read_small
from tui.logs.sniff import LFS_MESSAGE, is_lfs_pointer
from tui.logs.values import ErrorLog, StepFiller, build_batch, columns_from_dicts

STATE_FILE = "trainer_state.json"
_CHECKPOINT = re.compile(r"checkpoint-(\d+)")
LAST_CHECKPOINT = "last-checkpoint"  # push_to_hub(hub_strategy="checkpoint") keeps one here
MAX_STATE_BYTES = 256 << 20  # a trainer_state.json beyond this is refused, not loaded
_MAX_STATE_BYTES = MAX_STATE_BYTES
# TrainerState.save_to_json sorts its keys: global_step comes before log_history, within the
# first few hundred bytes
_GLOBAL_STEP = re.compile(rb'"global_step"\s*:\s*(\d+)')
_HEAD = 16 * 1024
_step_cache: dict[tuple[str, int, int, int], int | None] = {}


def state_global_step(path: str | os.PathLike[str]) -> int | None:
    """A trainer_state.json's `global_step`, from its head (cached by inode, size and mtime;
    None when the file cannot be read or does not say)."""
    try:
        fd, st = open_regular(path)
    except UnsafeFile:
        return None
    try:
        key = (os.fspath(path), st.st_ino, st.st_size, st.st_mtime_ns)
        if key in _step_cache:
            return _step_cache[key]
        head = os.read(fd, _HEAD)
    except OSError:
        return None
    finally:
        os.close(fd)
    m = _GLOBAL_STEP.search(head)
    step = int(m.group(1)) if m else None
    if len(_step_cache) > 10_000:
        _step_cache.clear()
    _step_cache[key] = step
    return step


def checkpoint_states(folder: str | os.PathLike[str]) -> list[tuple[int, Path]]:
    """(N, path) of every `checkpoint-N/trainer_state.json` directly under folder, by N."""
    found: list[tuple[int, Path]] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        m = _CHECKPOINT.fullmatch(entry.name)
        if m is None:
            continue
        state = Path(entry.path) / STATE_FILE
        try:
            if state.is_file():
                found.append((int(m.group(1)), state))
        except OSError:  # an unreadable checkpoint folder is not the newest state
            continue
    found.sort(key=lambda item: item[0])
    return found


def newest_trainer_state(folder: str | os.PathLike[str]) -> Path | None:
    """The trainer_state.json that holds the most of a Trainer output folder's history: the
    highest `global_step` among `checkpoint-N/` (N is its global step), `last-checkpoint/`
    and the folder's own file (written by `trainer.save_state()` at the end). On a tie the
    folder's own file wins (it is written last), then last-checkpoint/."""
    folder = Path(folder)
    checkpoints = checkpoint_states(folder)
    best: tuple[int, int] | None = None
    newest: Path | None = None
    if checkpoints:
        best, newest = (checkpoints[-1][0], 0), checkpoints[-1][1]
    for rank, path in ((1, folder / LAST_CHECKPOINT / STATE_FILE), (2, folder / STATE_FILE)):
        step = state_global_step(path)
        if step is None:
            continue
        if best is None or (step, rank) > best:
            best, newest = (step, rank), path
    if newest is None:
        # a file that does not say its step (or is still being written) is still the one
        for path in (folder / STATE_FILE, folder / LAST_CHECKPOINT / STATE_FILE):
            try:
                fd, _ = open_regular(path)
            except UnsafeFile:
                continue
            os.close(fd)
            return path
    return newest


class HFTrainerStateReader:
    """Incremental reader of a Hugging Face trainer_state.json (`format = "hf_trainer_state"`).

    `path` is the file, or a Trainer output folder whose newest checkpoint's file is followed.
    After a read, `state_meta` holds the file's top-level fields except `log_history`, and
    `current_file` the file that was read.
    """

    format = "hf_trainer_state"

    def __init__(self, path: str | os.PathLike[str], *, max_errors: int = 5) -> None:
        self.path = Path(path)
        self.max_errors = max_errors
        self.state_meta: dict[str, Any] = {}
        self.current_file: Path | None = None
        self.stale = False  # the file on disk does not parse; the last good copy stands
        self._keys: list[str] = []  # one canonical text per log_history entry returned
        self._seen: tuple[Path, int, int, int] | None = None  # (file, inode, size, mtime_ns)
        self._reported: str | None = None  # the last error, not repeated while it stays
        self._steps = StepFiller()

    @property
    def max_steps(self) -> int | None:
        """The Trainer's planned number of optimizer steps (`max_steps`), if known."""
        value = self.state_meta.get("max_steps")
        return value if isinstance(value, int) and value > 0 else None

    def _resolve(self) -> Path | None:
        try:
            if self.path.is_dir():
                return newest_trainer_state(self.path)
        except OSError:  # a folder on the way without search permission: stat() reports it
            pass
        return self.path

    def _fail(self, errors: ErrorLog, message: str) -> ReadResult:
        if message != self._reported:
            errors.add(message)
            self._reported = message
        return ReadResult(errors=errors.result())

    def read(self) -> ReadResult:
        errors = ErrorLog(self.path, self.max_errors)
        file = self._resolve()
        if file is None:
            return self._fail(errors, f"no {STATE_FILE} found")
        try:
            st = os.stat(file)
        except OSError as exc:
            return self._fail(errors, f"{file.name}: {exc.strerror or 'cannot be read'}")
        sig = (file, st.st_ino, st.st_size, st.st_mtime_ns)
        if sig == self._seen:
            return ReadResult()  # unchanged since the last parse (good or bad)
        if st.st_size > _MAX_STATE_BYTES:
            self._seen = sig
            return self._fail(errors, f"{file.name}: {st.st_size} bytes, too large to load")
        try:
            raw = read_small(file, _MAX_STATE_BYTES)
        except UnsafeFile as exc:
            self._seen = sig
            return self._fail(errors, f"{file.name}: {exc.reason}")
        if is_lfs_pointer(raw):
            self._seen = sig
            return self._fail(errors, f"{file.name}: {LFS_MESSAGE}")
        state = _parse(raw)
        if not isinstance(state, dict) or not isinstance(state.get("log_history"), list):
            # empty or half-written (the Trainer writes in place): keep the last good copy and
            # say nothing while there is one; try again when the file changes
            self._seen = sig
            self.stale = True
            if self._keys or self.state_meta or not raw.strip():
                return ReadResult()
            if state is None:
                return self._fail(errors, f"{file.name}: not valid JSON (half-written?)")
            return self._fail(errors, f"{file.name}: not a trainer_state.json (no log_history)")
        self._seen = sig
        self.stale = False
        self._reported = None
        self.current_file = file
        self.state_meta = {k: v for k, v in state.items() if k != "log_history"}
        history = [e for e in state["log_history"] if isinstance(e, dict)]
        keys = [_entry_key(e) for e in history]
        old = len(self._keys)
        reset = not (len(keys) >= old and keys[:old] == self._keys)
        if reset:
            self._steps = StepFiller()
            new = history
        else:
            new = history[old:]
        self._keys = keys
        rows = [e for e in new if not is_summary(e)]
        columns = columns_from_dicts(rows)
        batch = build_batch(columns, len(rows), self._steps, time_columns={})
        return ReadResult(batch, errors.result(), reset)


def is_summary(entry: dict[str, Any]) -> bool:
    """The end-of-training summary entry (train_runtime, mean train_loss): not a point."""
    return "train_runtime" in entry


def _parse(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)  # Python's json writes NaN / Infinity, which orjson refuses
    except (ValueError, RecursionError, MemoryError):
        return None


def _entry_key(entry: dict[str, Any]) -> str:
    # repr, not ==: a NaN loss never equals itself, yet the same entry re-read is the same
    return repr(sorted(entry.items()))
