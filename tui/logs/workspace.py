"""Workspace: the runs and studies under one or more roots, kept up to date.

`refresh()` walks the roots for new runs and log files, then reads; `poll()` only reads what
known files gained. Both are meant for ONE worker thread (the app's) or a plain script
(`tunetop check`); the run stores they fill may be read from other threads.

Data flows one way (DESIGN.md): files -> readers -> run stores. Names are mapped onto the
canonical metric names here, where the file's place in the run folder is known.

Second-tier names (issue 15, aliases.fallback_canonical: `total_loss`, `train/nll_loss`,
`eval_<name>_loss`) are kept under their own names; where a run logs no first-tier name for
`loss` or `val_loss`, one of them is also read as that metric, and `Run.metric_sources` says
which. The rule that picks it: the first such series the source logged (several in the same
read: the alphabetically first); once picked it stays, so the series never switches source.
So an HF run with `eval_mmlu_loss` and `eval_gsm8k_loss` and no `eval_loss` reads
`eval_gsm8k_loss` as its val_loss, and `best` names it.

run.json, config files and trainer_state.json are read through safe_io; a malformed one costs
only itself (runjson.py).
"""

from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tui.config import Config
from tui.logs.aliases import AliasTable, fallback_canonical
from tui.logs.batch import ColumnBatch
from tui.logs.discovery import LogFile, RunLayout, find_runs, is_hparams_folder
from tui.logs.hparams import read_hparams
from tui.logs.model import Run, Study
from tui.logs.reader import Reader
from tui.logs.runjson import read_run_json
from tui.logs.safe_io import UnsafeFile, load_json
from tui.logs.studies import is_study

MAX_ERRORS = 1000  # errors kept; the oldest go first
# an HF output folder's one reader is keyed <folder>/trainer_state.json (hf_state.STATE_FILE,
# not imported here: that module is loaded only when a run needs it)
_HF_STATE = "trainer_state.json"
_MAX_STATE_BYTES = 256 << 20  # hf_state.MAX_STATE_BYTES (not imported here, as above)
_FALLBACK_TARGETS = ("loss", "val_loss")
_PLANNED = "total_steps"


def make_reader(log: LogFile) -> Reader:
    """The reader for one log file (imported lazily: `check` on JSONL needn't load protobufs)."""
    if log.format == "tfevents":
        from tui.logs.tfevents import TfEventsReader

        return TfEventsReader(log.path)
    if log.format == "jsonl":
        from tui.logs.jsonl import JsonlReader

        return JsonlReader(log.path)
    if log.format == "csv":
        from tui.logs.csvlog import CsvReader

        return CsvReader(log.path)
    if log.format == "hf_trainer_state":
        from tui.logs.hf_state import HFTrainerStateReader

        return HFTrainerStateReader(log.path)
    raise ValueError(f"unknown log format {log.format!r}")


@dataclass
class Changes:
    new_runs: list[str] = field(default_factory=list)
    updated: dict[str, int] = field(default_factory=dict)  # run id -> points added
    new_errors: list[tuple[str, str]] = field(default_factory=list)
    studies_changed: bool = False
    status_changed: list[str] = field(default_factory=list)  # run ids whose run.json changed

    def __bool__(self) -> bool:
        return bool(
            self.new_runs
            or self.updated
            or self.new_errors
            or self.studies_changed
            or self.status_changed
        )

    def merge(self, other: Changes) -> None:
        self.new_runs.extend(other.new_runs)
        for k, v in other.updated.items():
            self.updated[k] = self.updated.get(k, 0) + v
        self.new_errors.extend(other.new_errors)
        self.studies_changed |= other.studies_changed
        self.status_changed.extend(other.status_changed)


@dataclass
class _Source:
    """One log file of one run: its reader and how its names map onto canonical ones."""

    run_id: str
    log: LogFile
    reader: Reader
    names: dict[str, str] = field(default_factory=dict)
    fallback: dict[str, str] = field(default_factory=dict)  # canonical -> series it copies


def _read_state_meta(path: Path) -> dict[str, Any] | None:
    """trainer_state.json for its trial_params / max_steps; its reader reports its errors."""
    try:
        data = load_json(path, _MAX_STATE_BYTES)
    except (UnsafeFile, OSError):
        return None
    return data if isinstance(data, dict) else None


def _is_scalar_subfolder(log: LogFile) -> bool:
    """An add_scalars subfolder (`lr_group0/`): its folder name tells series apart. Not an
    add_hparams folder (`1700000000.12/`): its metrics keep their own names."""
    return (
        log.format == "tfevents"
        and bool(log.parts)
        and log.parts[0] != "runs"
        and not log.parts[0].startswith("checkpoint-")
        and not is_hparams_folder(log.parts[-1])
    )


def _is_main_events(log: LogFile) -> bool:
    """An event file of the run itself: in its folder or a HF runs/<date_host>/ (not an
    add_scalars / Keras / add_hparams subfolder, whose series are their own)."""
    return not log.parts or (len(log.parts) == 2 and log.parts[0] == "runs")


_EVENT_TIME = re.compile(r"tfevents\.(\d+)")


def _made_order(log: LogFile) -> tuple[int, str]:
    """Event files by the Unix time in their name (`events.out.tfevents.<time>.<host>...`)."""
    m = _EVENT_TIME.search(log.path.name)
    return (int(m.group(1)) if m else 0, log.path.name)


def _hparams_files(layout: RunLayout) -> list[Path]:
    return [
        f.path
        for f in layout.files
        if f.format == "tfevents" and f.parts and is_hparams_folder(f.parts[-1])
    ]


class Workspace:
    def __init__(self, roots: list[Path] | list[str], config: Config | None = None) -> None:
        self.roots = [Path(r) for r in roots]
        self.config = config or Config()
        self.aliases = AliasTable(self.config.aliases)
        self.runs: dict[str, Run] = {}
        self.studies: dict[str, Study] = {}
        self.errors: list[tuple[str, str]] = []
        self._sources: dict[Path, _Source] = {}
        self._run_json_mtime: dict[str, float] = {}
        self._error_keys: set[tuple[str, str]] = set()
        self._prefixes = self._root_prefixes()
        self._run_root: dict[str, int] = {}  # run id -> index of the root it was found under
        self._hparams_changed = False  # a read taught a run's planned length

    # -- naming ------------------------------------------------------------------------
    def _root_prefixes(self) -> list[str]:
        if len(self.roots) <= 1:
            return [""]
        names = [r.resolve().name or str(r) for r in self.roots]
        out = []
        for i, n in enumerate(names):
            out.append(f"{n}:" if names.count(n) == 1 else f"{n}#{i}:")
        return out

    def add_root(self, path: Path | str) -> None:
        """Watch one more folder (a study launched outside every root). Runs found so far keep
        their ids; the new root's runs get a prefix of their own."""
        path = Path(path)
        if path in self.roots:
            return
        name = path.resolve().name or "root"
        prefix, n = f"{name}:", 1
        while prefix in self._prefixes:
            n += 1
            prefix = f"{name}#{n}:"
        self.roots.append(path)
        self._prefixes.append(prefix)

    def _run_id(self, root_index: int, folder: Path) -> str:
        root = self.roots[root_index]
        if root.is_file():  # a single log file given as the root
            return self._prefixes[root_index] + "."
        rel = os.path.relpath(folder, root)
        rel = "." if rel == "." else rel.replace(os.sep, "/")
        return self._prefixes[root_index] + rel

    def metric_name(self, raw: str, log: LogFile) -> str:
        """The canonical name of a file's series; where the folder, not the tag, says train
        or validation, the folder decides (DESIGN.md)."""
        split = log.split
        canon = self.aliases.canonical(raw, split)
        if canon != raw or not log.parts:
            return canon
        if split == "val":
            return raw if raw.lower().startswith("val") else f"val_{raw}"
        if split == "train":
            return raw
        if _is_scalar_subfolder(log):
            folder = "/".join(log.parts)
            return folder if folder.startswith(raw) else f"{folder}/{raw}"
        return raw

    # -- errors ------------------------------------------------------------------------
    def _error(self, path: str, message: str, changes: Changes) -> None:
        key = (path, message)
        if key in self._error_keys:
            return
        self._error_keys.add(key)
        self.errors.append(key)
        changes.new_errors.append(key)
        if len(self.errors) > MAX_ERRORS:
            old = self.errors.pop(0)
            self._error_keys.discard(old)

    # -- discovery ---------------------------------------------------------------------
    def refresh(self) -> Changes:
        changes = Changes()
        for i, root in enumerate(self.roots):
            errors: list[tuple[str, str]] = []
            if not root.exists():
                self._error(str(root), "path does not exist (yet): watching for it", changes)
                continue
            for layout in find_runs(root, errors):
                self._add_layout(i, layout, changes)
            for path, message in errors:
                self._error(path, message, changes)
        if changes.new_runs:
            self._group_studies()
            changes.studies_changed = True
        changes.merge(self.poll())
        if self._hparams_changed:
            self._hparams_changed = False
            self._group_studies()
            changes.studies_changed = True
        return changes

    def _add_layout(self, root_index: int, layout: RunLayout, changes: Changes) -> None:
        run_id = self._run_id(root_index, layout.folder)
        run = self.runs.get(run_id)
        if run is None:
            errs: list[tuple[str, str]] = []
            run_json, run_json_errors = read_run_json(layout.folder)
            errs += run_json_errors
            trainer_state = None
            for log in layout.files:
                if log.format == "hf_trainer_state":
                    trainer_state = _read_state_meta(log.path)
            from tui.logs.tb_hparams import hparams_of_files

            extra = hparams_of_files(_hparams_files(layout), errs)
            hparams = read_hparams(layout.folder, run_json, trainer_state, errs, extra)
            for p, m in errs:
                self._error(p, m, changes)
            run = Run(run_id, layout.folder, layout.format, hparams, run_json=run_json)
            self.runs[run_id] = run
            self._run_root[run_id] = root_index
            changes.new_runs.append(run_id)
            self._note_run_json(run, changes)
        files = sorted(
            layout.files,
            key=lambda f: (0, *_made_order(f)) if f.format == "tfevents" else (1, 0, ""),
        )
        for log in files:
            key = log.path
            if log.format == "hf_trainer_state":
                # one reader per output folder: it follows the newest checkpoint-N's state
                # itself and returns only entries beyond those it returned before
                key = layout.folder / _HF_STATE
                log = LogFile(layout.folder, log.format, ())
            if key in self._sources:
                continue
            try:
                reader = make_reader(log)
            except (ImportError, OSError, ValueError) as exc:
                self._error(str(log.path), f"cannot read: {exc}", changes)
                continue
            self._sources[key] = _Source(run_id, log, reader)
            if log.format == "hf_trainer_state" and any(
                f.format == "tfevents" or (f.format == "jsonl" and not f.parts)
                for f in layout.files
            ):
                # where both hold a series, the event file (or LLaMA-Factory's trainer_log.jsonl
                # beside trainer_state.json) is read, being live (DESIGN.md): each point once
                run.store.source_priority[self._source_key(log)] = -1
            elif (
                log.format == "jsonl"
                and log.path.suffix == ".json"
                and any(f.format == "tfevents" and f.parts == log.parts for f in layout.files)
            ):
                # detectron2 writes the same scalars to metrics.json and to the event file
                # beside it: each point counted once, from the event file
                run.store.source_priority[self._source_key(log)] = -1
        if run.format != layout.format:
            run.format = layout.format

    def _source_key(self, log: LogFile) -> str:
        # all trainer_state files of a run are one source: each is a prefix of the next
        if log.format == "hf_trainer_state":
            return "hf_trainer_state"
        if log.format == "tfevents" and _is_main_events(log):
            # a restarted or resumed run writes a new event file beside the old ones (and
            # HF a new runs/<date_host>/): one source, read in the order the files were
            # made, so the step going back at a new file's start is a restart that
            # supersedes the old file's points from there, as within one file
            return "tfevents"
        return str(log.path)

    def _group_studies(self) -> None:
        """A study is the set of runs directly under one folder (two or more) that share one
        configuration except the swept keys (studies.is_study)."""
        by_parent: dict[tuple[int, Path], list[Run]] = {}
        for run in self.runs.values():
            i = self._run_root[run.id]
            if run.id != self._prefixes[i] + ".":  # a root that is itself a run has no study
                by_parent.setdefault((i, run.path.parent), []).append(run)
        studies: dict[str, Study] = {}
        for (i, parent), runs in by_parent.items():
            if not is_study(runs):
                continue
            study_id = self._run_id(i, parent)
            studies[study_id] = make_study(study_id, parent, runs)
        self.studies = studies

    # -- reading -----------------------------------------------------------------------
    def _sources_for(self, paths: set[str]) -> list[tuple[Path, _Source]]:
        """The sources a set of changed files concerns (an HF reader is keyed by its output
        folder: a change anywhere below it concerns it)."""
        out: dict[Path, _Source] = {}
        for raw in paths:
            p = Path(raw)
            for candidate in (
                p,
                p.parent / _HF_STATE,
                p.parent.parent / _HF_STATE,
            ):
                src = self._sources.get(candidate)
                if src is not None:
                    out[candidate] = src
        return list(out.items())

    def poll(self, paths: set[str] | None = None) -> Changes:
        """Read what known files gained: all of them, or only `paths` when the caller knows
        which changed (inotify)."""
        changes = Changes()
        items = list(self._sources.items()) if paths is None else self._sources_for(paths)
        for path, src in items:
            run = self.runs.get(src.run_id)
            if run is None:
                continue
            try:
                result = src.reader.read()
            except Exception as exc:  # a reader bug must not stop the tool
                self._error(str(path), f"reader failed: {type(exc).__name__}: {exc}", changes)
                continue
            for message in result.errors:
                self._error(str(path), message, changes)
                if message not in run.errors:
                    run.errors.append(message)
            batch = result.batch
            if len(batch) == 0:
                # a file cut to nothing keeps what was read, so a log rotated or emptied by
                # mistake does not wipe the curve off the screen
                continue
            # the file was rewritten: store.append drops what it said before (batch.py)
            batch.reset = batch.reset or result.reset
            if src.log.format == "jsonl" and _PLANNED in batch.columns:
                batch = self._note_planned_length(run, batch)
            names = src.names
            for raw in batch.columns:
                if raw not in names:
                    names[raw] = self.metric_name(raw, src.log)
            renamed = self._add_fallbacks(run, src, batch.rename(names))
            added = run.store.append(renamed, self._source_key(src.log))
            if added or renamed.reset:
                changes.updated[run.id] = changes.updated.get(run.id, 0) + added
                run.last_write = time.time()
        if paths is None:
            runs = list(self.runs.values())
        else:  # only runs whose run.json changed
            folders = {Path(p).parent for p in paths if Path(p).name == "run.json"}
            runs = [r for r in self.runs.values() if r.path in folders]
        for run in runs:
            if self._note_run_json(run, changes):
                changes.status_changed.append(run.id)
        return changes

    def _note_planned_length(self, run: Run, batch: ColumnBatch) -> ColumnBatch:
        """A `total_steps` field on every record (LLaMA-Factory's trainer_log.jsonl) is the
        run's planned length (max_train_steps, DESIGN.md's alias), not a metric."""
        col = batch.columns[_PLANNED]
        values = col.values if col.present is None else col.values[col.present]
        finite = values[np.isfinite(values)] if len(values) else values
        if len(finite) and 0 < finite[-1] < 2**62 and "max_train_steps" not in run.hparams:
            run.hparams["max_train_steps"] = int(finite[-1])
            self._hparams_changed = True  # studies' swept keys are recomputed
        rest = {k: v for k, v in batch.columns.items() if k != _PLANNED}
        return ColumnBatch(batch.steps, batch.times, rest, batch.reset, batch.restarts)

    def _add_fallbacks(self, run: Run, src: _Source, batch: ColumnBatch) -> ColumnBatch:
        """`loss` / `val_loss` copied from a second-tier series where the run logs no
        first-tier name for them (the module docstring says which one is picked)."""
        extra = {}
        for canon in _FALLBACK_TARGETS:
            chosen = src.fallback.get(canon)
            if chosen is None:
                if canon in batch.columns or canon in src.names.values():
                    continue  # a first-tier name of this source
                if canon not in run.metric_sources and run.store.has(canon):
                    continue  # another source of the run logs it under a first-tier name
                candidates = sorted(n for n in batch.columns if fallback_canonical(n) == canon)
                if not candidates:
                    continue
                known = run.metric_sources.get(canon)
                chosen = known if known in candidates else candidates[0]
                src.fallback[canon] = chosen
                run.metric_sources.setdefault(canon, chosen)
            col = batch.columns.get(chosen)
            if col is not None and canon not in batch.columns:
                extra[canon] = col
        if not extra:
            return batch
        return ColumnBatch(
            batch.steps, batch.times, {**batch.columns, **extra}, batch.reset, batch.restarts
        )

    def _note_run_json(self, run: Run, changes: Changes | None = None) -> bool:
        """Re-read the runner's run.json when it changed (its status, exit code)."""
        path = run.path / "run.json"
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return False
        if self._run_json_mtime.get(run.id) == mtime:
            return False
        self._run_json_mtime[run.id] = mtime
        data, errs = read_run_json(run.path)
        if changes is not None:
            for p, m in errs:
                self._error(p, m, changes)
        if data is None:
            return False
        changed = data != run.run_json
        run.run_json = data
        return changed

    def close(self) -> None:
        for src in self._sources.values():
            close = getattr(src.reader, "close", None)
            if callable(close):
                close()


def _sort_key(value: Any) -> tuple[int, float, str]:
    if isinstance(value, bool):
        return (1, float(value), "")
    if isinstance(value, int | float) and math.isfinite(float(value)):
        return (0, float(value), "")
    return (2, 0.0, str(value))


def make_study(study_id: str, folder: Path, runs: list[Run]) -> Study:
    """Its swept hyperparameters are those whose values differ between its runs."""
    keys: dict[str, None] = {}
    for run in runs:
        for k in run.hparams:
            keys.setdefault(k, None)
    swept: dict[str, list[Any]] = {}
    for k in keys:
        values = [run.hparams.get(k) for run in runs]
        if len({json.dumps(v, sort_keys=True, default=str) for v in values}) > 1:
            swept[k] = values
    ordered = sorted(runs, key=lambda r: r.id)
    study = Study(study_id, folder, ordered, {})
    param = study_param(swept)
    if param is not None:
        ordered = sorted(runs, key=lambda r: (_sort_key(r.hparams.get(param)), r.id))
    study.runs = ordered
    study.swept = {k: [r.hparams.get(k) for r in ordered] for k in swept}
    return study


def study_param(swept: dict[str, list[Any]]) -> str | None:
    names = [k for k in swept if k != "seed"]
    return names[0] if len(names) == 1 else None
