"""Finding runs in a folder tree (DESIGN.md "Runs and studies").

A run is a folder holding a log. Where a framework spreads one run over subfolders it is still
one run: a Hugging Face output folder (checkpoint-N/trainer_state.json and runs/*/events), Keras'
train/ and validation/, and the subfolders `add_scalars` writes beside the main event file
(`loss_train/` from torch.utils.tensorboard, `loss/train/` from tensorboardX).

Other layouts (issue 15): an `add_hparams` subfolder (`<log_dir>/<unix time>/`, torch's
SummaryWriter; under a Hugging Face `runs/<date_host>/`) is part of the run it sits in;
`last-checkpoint/` (the Trainer's hub checkpoint) is one more checkpoint of its output folder;
mmengine's `vis_data/` belongs to its timestamp folder, where `scalars.json` and the
`<timestamp>.json` beside it hold the same records (the first is read); a Ray Tune trial folder
(params.json + result.json) is read from result.json only: progress.csv and the event file
beside it hold the same results, and its pickles are never opened.

The walk never follows a symlink that leads out of the root, and ends on loops. It reads
directory entries, and the head of a file only where its name cannot tell (sniff.py: `.json`
logs, LFS pointers), always through safe_io. FIFOs, sockets and devices are never opened: each
is an `errors` entry. So is a folder cut by the depth limit, and a folder of files that look
like logs but yield no run ("metrics.json: not a recognised log").
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from tui.logs import sniff
from tui.logs.aliases import split_of
from tui.logs.hf_state import state_global_step
from tui.trust import CONFIG_NAME  # read by tui.config, not by the walk

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
        # not "checkpoints": the runner's holds only *.pt files, and a Trainer's output_dir
        # is often named so (checkpoints/trial_9/trainer_state.json is a run)
    }
)
_HF_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_HF_LAST = "last-checkpoint"  # push_to_hub(hub_strategy="checkpoint"): a copy of the newest
_TFEVENTS = re.compile(r"(^|\.)tfevents\.")
_JSONL_NAMES = re.compile(
    r"^(metrics|.*metrics|log|train_log|trainer_log|history|progress)\.jsonl$", re.I
)
_CSV_NAMES = re.compile(r"^(metrics|.*metrics|progress|history|log)\.csv$", re.I)
# `.json` names that are JSON lines in the wild (sniffed before they count): detectron2
# metrics.json, mmengine scalars.json / <YYYYmmdd_HHMMSS>.json, Ray Tune result.json. Not mmcv's
# <timestamp>.log.json: its `iter` counts within each epoch, so read as a step every epoch
# would look like a restart and supersede the one before
_JSON_LOG_NAMES = re.compile(
    r"^(metrics|.*metrics|scalars|.*_scalars|result|log|train_log|trainer_log|history"
    r"|\d{8}_\d{6})\.json$",
    re.I,
)
# torch's SummaryWriter.add_hparams writes its event file into <log_dir>/<time.time()>/
_HPARAMS_DIR = re.compile(r"^\d{9,11}\.\d+$")
_MMENGINE_TS = re.compile(r"^\d{8}_\d{6}\.json$")
_TIMESTAMP_DIR = re.compile(r"^\d{8}_\d{6}$")

MAX_DEPTH = 12
MAX_DEPTH_ERRORS = 20  # folders cut by the depth limit named one by one; then one count


def is_json_log_name(name: str) -> bool:
    """A `.json` name that may be a JSON-lines log (its content decides: sniff.py)."""
    return bool(_JSON_LOG_NAMES.match(name)) and name != "trainer_state.json"


def is_hparams_folder(name: str) -> bool:
    """An add_hparams subfolder (`1700000000.1234567`)."""
    return bool(_HPARAMS_DIR.match(name))


def log_format(name: str) -> str | None:
    """The format of a log file, by its name, or None when it is not one (a `.json` log
    candidate is None here: only its content says; see walk_logs)."""
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


def _special(mode: int) -> str | None:
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return None


def walk_logs(
    root: Path,
    errors: list[tuple[str, str]] | None = None,
    rejects: list[tuple[Path, str]] | None = None,
) -> Iterator[tuple[Path, list[tuple[str, str]], list[str]]]:
    """(folder, [(file name, format)], [subfolder names]) for every folder under root.

    `errors` gets the special files (never opened), LFS pointers and folders cut by the depth
    limit; `rejects` the `.json` log candidates whose content is no log, (path, reason): they
    are errors only where their folder yields no run (find_runs decides)."""
    real_root = Path(os.path.realpath(root))
    seen: set[tuple[int, int]] = set()
    stack: list[tuple[Path, int]] = [(root, 0)]
    cut = 0

    def error(path: str, message: str) -> None:
        if errors is not None:
            errors.append((path, message))

    while stack:
        folder, depth = stack.pop()
        try:
            st = os.stat(folder)
        except OSError as exc:
            error(str(folder), f"cannot read folder: {exc.strerror}")
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
            error(str(folder), f"cannot read folder: {exc.strerror}")
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=True):
                    if entry.name in SKIP_DIRS:
                        continue
                    if entry.is_symlink() and not _inside(
                        Path(os.path.realpath(entry.path)), real_root
                    ):
                        continue  # symlinks that lead out of the root are not followed
                    if depth >= MAX_DEPTH:
                        # said, not silently dropped: runs down there would vanish (issue 14)
                        cut += 1
                        if cut <= MAX_DEPTH_ERRORS:
                            error(
                                entry.path,
                                f"more than {MAX_DEPTH} folders below the root: not searched "
                                "(watch a folder nearer to its runs)",
                            )
                        continue
                    subdirs.append(entry.name)
                    continue
                est = entry.stat(follow_symlinks=True)  # a stat, never an open
                kind = _special(est.st_mode)
                if kind is not None:
                    if entry.name != CONFIG_NAME:  # the config's reader says it (config.py)
                        error(entry.path, f"is {kind}, not a regular file: skipped")
                    continue
                if not stat.S_ISREG(est.st_mode):
                    continue
                fmt = log_format(entry.name)
                json_log = fmt is None and is_json_log_name(entry.name)
                if fmt is None and not json_log:
                    continue
                if entry.is_symlink() and not _inside(
                    Path(os.path.realpath(entry.path)), real_root
                ):
                    continue
                verdict = sniff.sniff(
                    entry.path,
                    est.st_size,
                    (est.st_dev, est.st_ino, est.st_mtime_ns),
                    json_log=json_log,
                    csv_log=fmt == "csv",
                    state_log=fmt == "hf_trainer_state",
                )
                if verdict == "lfs":
                    error(entry.path, sniff.LFS_MESSAGE)
                    continue
                if fmt in ("csv", "hf_trainer_state") and verdict is not None:
                    if rejects is not None:
                        rejects.append((Path(entry.path), verdict))
                    continue
                if json_log:
                    if verdict == "jsonl":
                        logs.append((entry.name, "jsonl"))
                    elif verdict is not None and rejects is not None:
                        rejects.append((Path(entry.path), verdict))
                    continue
                logs.append((entry.name, fmt))
            except OSError:
                continue
        yield folder, sorted(logs), sorted(subdirs)
        for name in sorted(subdirs, reverse=True):
            stack.append((folder / name, depth + 1))
    if cut > MAX_DEPTH_ERRORS:
        error(
            str(root),
            f"{cut - MAX_DEPTH_ERRORS} more folders more than {MAX_DEPTH} levels deep not searched",
        )


def find_runs(root: Path, errors: list[tuple[str, str]] | None = None) -> list[RunLayout]:
    """Every run under root, its log files attached to the folder that owns them. A root
    that is itself a log file is a run of that one file."""
    if root.is_file():
        fmt = log_format(root.name)
        if fmt is None and is_json_log_name(root.name):
            try:
                st = root.stat()
            except OSError:
                return []
            verdict = sniff.sniff(
                root, st.st_size, (st.st_dev, st.st_ino, st.st_mtime_ns), json_log=True
            )
            fmt = "jsonl" if verdict == "jsonl" else None
            if fmt is None and verdict is not None and errors is not None:
                errors.append((str(root), verdict if verdict != "lfs" else sniff.LFS_MESSAGE))
        return [RunLayout(root.parent, [LogFile(root, fmt, ())])] if fmt else []
    listing: dict[Path, tuple[list[tuple[str, str]], list[str]]] = {}
    rejects: list[tuple[Path, str]] = []
    for folder, logs, subdirs in walk_logs(root, errors, rejects):
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
            _is_checkpoint(d) and has_format(folder / d, "hf_trainer_state") for d in entry[1]
        )

    def owner(folder: Path) -> Path:
        """The run folder a log folder belongs to."""
        if folder == root:
            return folder
        parent = folder.parent
        # add_hparams: <log_dir>/<unix time>/events.* is part of the run of <log_dir>
        if is_hparams_folder(folder.name) and has_format(folder, "tfevents"):
            return owner(parent)
        # mmengine: <work_dir>/<timestamp>/vis_data/scalars.json is the timestamp folder's run
        if (
            folder.name == "vis_data"
            and _TIMESTAMP_DIR.match(parent.name)
            and not listing.get(parent, ([],))[0]
        ):
            return parent
        # HF: checkpoint-N/ and last-checkpoint/ trainer_state.json belong to the output folder
        if _is_checkpoint(folder.name) and is_hf_output(parent):
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
        _drop_copies(layout)
        layout.files.sort(key=lambda f: (f.parts, f.path.name))
    if errors is not None and rejects:
        # a folder of files that look like logs, none of which is one, says so: never
        # "0 runs, 0 errors" for a folder of detectron2-like summaries
        owned = {f.path.parent for layout in runs.values() for f in layout.files}
        for path, reason in rejects:
            if path.parent not in owned:
                errors.append((str(path), reason))
    return sorted(runs.values(), key=lambda r: str(r.folder))


def _is_checkpoint(name: str) -> bool:
    return name == _HF_LAST or bool(_HF_CHECKPOINT.match(name))


def _drop_copies(layout: RunLayout) -> None:
    """Files that repeat another file's records are not read twice: a Ray Tune trial's
    progress.csv and event file (result.json holds the same results), mmengine's
    <timestamp>.json beside the scalars.json that holds the same records."""
    names = [f.path.name for f in layout.files]
    if "result.json" not in names and not any(_MMENGINE_TS.match(n) for n in names):
        return  # the common case: nothing can repeat another file
    top = {f.path.name for f in layout.files if f.path.parent == layout.folder}
    names_by_dir: dict[Path, set[str]] = {}
    for f in layout.files:
        names_by_dir.setdefault(f.path.parent, set()).add(f.path.name)
    ray_trial = "result.json" in top and (layout.folder / "params.json").is_file()
    kept: list[LogFile] = []
    for f in layout.files:
        here = names_by_dir[f.path.parent]
        if ray_trial and f.path.parent == layout.folder and f.path.name != "result.json":
            continue
        if _MMENGINE_TS.match(f.path.name) and "scalars.json" in here:
            continue
        kept.append(f)
    layout.files = kept


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
    newest, the one with the highest `global_step` (a touched old checkpoint is not newer:
    file times decide nothing). On a tie the output folder's own file wins (the Trainer
    writes it last), then last-checkpoint/, then checkpoint-N/."""
    states = [f for f in layout.files if f.format == "hf_trainer_state"]
    if len(states) <= 1:
        return

    def rank(f: LogFile) -> tuple[int, int]:
        where = f.parts[0] if f.parts else ""
        m = _HF_CHECKPOINT.match(where)
        if m is not None:
            return (int(m.group(1)), 0)
        step = state_global_step(f.path)
        return (step if step is not None else -1, 2 if not where else 1)

    newest = max(states, key=rank)
    layout.files = [f for f in layout.files if f.format != "hf_trainer_state" or f is newest]
