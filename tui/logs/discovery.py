"""Finding runs in a folder tree (DESIGN.md "Runs and studies").

A run is a folder holding a log. Where a framework spreads one run over subfolders it is still
one run: a Hugging Face output folder (checkpoint-N/trainer_state.json and runs/*/events), Keras'
train/ and validation/, and the subfolders `add_scalars` writes beside the main event file
(`loss_train/` from torch.utils.tensorboard, `loss/train/` from tensorboardX).

The walk never follows a symlink that leads out of the root, and ends on loops. It only reads
directory entries: no file is opened here.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tui.logs.aliases import split_of

SKIP_DIRS = frozenset(
    {
        ".git",
        "__pycache__",
        ".ipynb_checkpoints",
        "node_modules",
        ".venv",
        "venv",
        ".hg",
        "wandb",
        ".cache",
        "checkpoints",
    }
)
_HF_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_TFEVENTS = re.compile(r"(^|\.)tfevents\.")
_JSONL_NAMES = re.compile(r"^(metrics|.*metrics|log|train_log|history|progress)\.jsonl$", re.I)
_CSV_NAMES = re.compile(r"^(metrics|.*metrics|progress|history|log)\.csv$", re.I)

MAX_DEPTH = 12


def log_format(name: str) -> str | None:
    """The format of a log file, by its name, or None when it is not one."""
    if _TFEVENTS.search(name):
        return "tfevents"
    if name == "trainer_state.json":
        return "hf_trainer_state"
    if _JSONL_NAMES.match(name):
        return "jsonl"
    if _CSV_NAMES.match(name):
        return "csv"
    return None


@dataclass
class LogFile:
    path: Path
    format: str
    parts: tuple[str, ...]  # folders between the run folder and the file ("loss_train",)

    @property
    def split(self) -> str | None:
        return split_of(self.parts) if self.parts else None


@dataclass
class RunLayout:
    folder: Path
    files: list[LogFile] = field(default_factory=list)

    @property
    def format(self) -> str:
        """The run's format: the HF trainer state when present, else its first kind of log."""
        formats = {f.format for f in self.files}
        for fmt in ("hf_trainer_state", "tfevents", "jsonl", "csv"):
            if fmt in formats:
                return fmt
        return "jsonl"


def _inside(path: Path, root: Path) -> bool:
    try:
        path.relative_to(root)
        return True
    except ValueError:
        return False


def walk_logs(
    root: Path, errors: list[tuple[str, str]] | None = None
) -> Iterator[tuple[Path, list[tuple[str, str]], list[str]]]:
    """(folder, [(file name, format)], [subfolder names]) for every folder under root."""
    real_root = Path(os.path.realpath(root))
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, int]] = [(root, 0)]
    while stack:
        folder, depth = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            if errors is not None:
                errors.append((str(folder), f"cannot read folder: {exc.strerror}"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen:  # a symlink loop or a second link to the same folder
            continue
        seen.add(key)
        logs: list[tuple[str, str]] = []
        subdirs: list[str] = []
        try:
            with os.scandir(folder) as it:
                entries = list(it)
        except OSError as exc:
            if errors is not None:
                errors.append((str(folder), f"cannot read folder: {exc.strerror}"))
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=True):
                    if entry.name in SKIP_DIRS or depth >= MAX_DEPTH:
                        continue
                    if entry.is_symlink() and not _inside(
                        Path(os.path.realpath(entry.path)), real_root
                    ):
                        continue  # symlinks that lead out of the root are not followed
                    subdirs.append(entry.name)
                elif entry.is_file(follow_symlinks=True):
                    fmt = log_format(entry.name)
                    if fmt is None:
                        continue
                    if entry.is_symlink() and not _inside(
                        Path(os.path.realpath(entry.path)), real_root
                    ):
                        continue
                    logs.append((entry.name, fmt))
            except OSError:
                continue
        yield folder, sorted(logs), sorted(subdirs)
        for name in sorted(subdirs, reverse=True):
            stack.append((folder / name, depth + 1))


def find_runs(root: Path, errors: list[tuple[str, str]] | None = None) -> list[RunLayout]:
    """Every run under root, its log files attached to the folder that owns them. A root
    that is itself a log file is a run of that one file."""
    if root.is_file():
        fmt = log_format(root.name)
        return [RunLayout(root.parent, [LogFile(root, fmt, ())])] if fmt else []
    listing: dict[Path, tuple[list[tuple[str, str]], list[str]]] = {}
    for folder, logs, subdirs in walk_logs(root, errors):
        listing[folder] = (logs, subdirs)

    def has_format(folder: Path, fmt: str) -> bool:
        entry = listing.get(folder)
        return bool(entry) and any(f == fmt for _, f in entry[0])

    def is_hf_output(folder: Path) -> bool:
        entry = listing.get(folder)
        if not entry:
            return False
        if any(f == "hf_trainer_state" for _, f in entry[0]):
            return True
        return any(
            _HF_CHECKPOINT.match(d) and has_format(folder / d, "hf_trainer_state") for d in entry[1]
        )

    def owner(folder: Path) -> Path:
        """The run folder a log folder belongs to."""
        if folder == root:
            return folder
        parent = folder.parent
        # HF: checkpoint-N/trainer_state.json belongs to the output folder
        if _HF_CHECKPOINT.match(folder.name) and is_hf_output(parent):
            return parent
        # HF: output/runs/<date_host>/events belongs to the output folder
        if parent.name == "runs" and parent != root and is_hf_output(parent.parent):
            return parent.parent
        if split_of((folder.name,)) is not None or _is_scalars_subfolder(folder, listing):
            # add_scalars / Keras: up to two levels to the folder with the main event file
            for up in (parent, parent.parent):
                if not _inside(up, root):
                    break
                if has_format(up, "tfevents"):
                    return up
            # Keras' train/ + validation/ under a folder without logs of its own
            if parent != folder and _inside(parent, root) and not listing.get(parent, ([],))[0]:
                return parent
        return folder

    runs: dict[Path, RunLayout] = {}
    for folder, (logs, _) in listing.items():
        if not logs:
            continue
        run_folder = owner(folder)
        layout = runs.setdefault(run_folder, RunLayout(run_folder))
        parts = folder.relative_to(run_folder).parts
        for name, fmt in logs:
            layout.files.append(LogFile(folder / name, fmt, parts))
    for layout in runs.values():
        _keep_newest_trainer_state(layout)
        layout.files.sort(key=lambda f: (f.parts, f.path.name))
    return sorted(runs.values(), key=lambda r: str(r.folder))


def _is_scalars_subfolder(
    folder: Path, listing: dict[Path, tuple[list[tuple[str, str]], list[str]]]
) -> bool:
    """`loss_lr0/` beside a main event file whose own folder has event files: torch's
    add_scalars names subfolders <main_tag>_<key>."""
    parent_logs = listing.get(folder.parent, ([], []))[0]
    mine = listing.get(folder, ([], []))[0]
    return (
        "_" in folder.name
        and any(f == "tfevents" for _, f in mine)
        and any(f == "tfevents" for _, f in parent_logs)
    )


def _keep_newest_trainer_state(layout: RunLayout) -> None:
    """checkpoint-N/trainer_state.json files are each a prefix of the next: read only the
    newest (the largest N, or the output folder's own file, which the Trainer writes last)."""
    states = [f for f in layout.files if f.format == "hf_trainer_state"]
    if len(states) <= 1:
        return

    def rank(f: LogFile) -> tuple[float, int]:
        # newest write first; the checkpoint number breaks ties
        m = _HF_CHECKPOINT.match(f.parts[0]) if f.parts else None
        try:
            mtime = f.path.stat().st_mtime
        except OSError:
            mtime = 0.0
        return (mtime, int(m.group(1)) if m else -1)

    newest = max(states, key=rank)
    layout.files = [f for f in layout.files if f.format != "hf_trainer_state" or f is newest]
