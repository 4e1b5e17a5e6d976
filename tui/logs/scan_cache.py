"""Which folders of a tree gained or lost a subfolder or a log, without walking it again.

The polling watcher (tui.watch) asks this each poll whether a walk for new runs is needed. A
folder's mtime changes when an entry is added to it, removed or renamed in it (POSIX), so a
stat per folder says whether its listing can have changed; only then is it listed again, and
only a change in its subfolders or in its log-like file names counts (a run.json replaced
through a temp file, a checkpoint's files, are not new runs).

Statting 20,000 folders still costs 60-80 ms on a small VM (3-4 us a stat): every poll, that
alone would be 3-4% of a core. So each poll stats the folders where new runs appear (the
roots, every folder that holds logs and the folders above them, folders that appeared
lately) and a slice of the others, sized to a share of the poll interval: the whole tree is
covered every few polls, and a new trial of a study, a new experiment under a root, or a log
that appears in a freshly made folder, are seen at the next poll.

Rules of the walk as in tui.logs.discovery: SKIP_DIRS are not entered, MAX_DEPTH is the
deepest level, symlinks are not followed (one inside the root leads to a folder that is
stamped itself; one leading out of the root is not a place discovery looks). No file is
opened: only stat and directory listings.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

from tui.logs.discovery import MAX_DEPTH, SKIP_DIRS, log_format

MIN_SWEEP = 256  # cold folders statted each check, whatever the time budget
YOUNG_FOR = 600.0  # seconds a folder that appeared stays checked every poll
HOT_MAX = 4000  # beyond this many hot folders, run folders themselves go to the sweep
RACY_NS = 5_000_000_000  # a folder changed this close to its listing is listed again
# names that content sniffing may take for a log even when discovery's names do not match
_LOG_SUFFIXES = (".json", ".jsonl", ".csv", ".log", ".txt", ".yaml", ".yml", ".toml")


def _may_be_log(name: str) -> bool:
    if name.startswith("."):
        return False  # temp files (.run.json.XXXX.tmp) and hidden files
    return log_format(name) is not None or name.endswith(_LOG_SUFFIXES)


@dataclass(slots=True)
class _Stamp:
    mtime_ns: int
    ino: int
    listed_ns: int  # wall-clock time of the listing (racy-mtime check)
    subdirs: frozenset[str]
    logs: frozenset[str]
    depth: int
    born: float  # monotonic time it appeared; 0.0 for folders of the first walk


class FolderStamps:
    """The stamps of every folder under some roots. Not thread-safe: one caller (the worker
    thread that polls)."""

    def __init__(self, roots: list[Path], relist_hot: bool = False) -> None:
        self.roots = [os.fspath(r) for r in roots]
        # network file systems: a stat answers from the client's attribute cache (up to a
        # minute old on NFS), opening a folder revalidates it; so hot folders are listed
        self.relist_hot = relist_hot
        self._stamps: dict[str, _Stamp] = {}
        self._missing: set[str] = set()  # roots that are not folders (yet)
        self._hot: list[str] = []
        self._cold: list[str] = []
        self._cursor = 0
        self._dirty = True  # the hot / cold lists need rebuilding
        self._replan_at = float("inf")  # when the oldest young folder grows old
        self.listings = 0  # folders listed since the start (tests, benchmarks)

    def __len__(self) -> int:
        return len(self._stamps)

    # -- building ------------------------------------------------------------------------
    def build(self) -> int:
        """List every folder once; returns how many there are."""
        self._stamps.clear()
        self._missing.clear()
        for root in self.roots:
            if os.path.isdir(root):
                self._add_tree(root, 0, born=0.0)
            else:
                self._missing.add(root)
        self._dirty = True
        return len(self._stamps)

    def _list(self, path: str, depth: int, born: float) -> _Stamp | None:
        try:
            st = os.stat(path, follow_symlinks=False)
            listed = time.time_ns()
            subdirs: set[str] = set()
            logs: set[str] = set()
            with os.scandir(path) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if entry.name not in SKIP_DIRS and depth < MAX_DEPTH:
                                subdirs.add(entry.name)
                        elif _may_be_log(entry.name):
                            logs.add(entry.name)  # files and symlinks to them alike
                    except OSError:
                        continue
        except OSError:
            return None
        self.listings += 1
        return _Stamp(
            st.st_mtime_ns, st.st_ino, listed, frozenset(subdirs), frozenset(logs), depth, born
        )

    def _add_tree(self, top: str, depth: int, born: float) -> None:
        stack = [(top, depth)]
        while stack:
            path, d = stack.pop()
            stamp = self._list(path, d, born)
            if stamp is None:
                continue
            self._stamps[path] = stamp
            stack.extend((os.path.join(path, name), d + 1) for name in stamp.subdirs)

    def _drop_tree(self, top: str) -> None:
        stamp = self._stamps.pop(top, None)
        if stamp is None:
            return
        for name in stamp.subdirs:
            self._drop_tree(os.path.join(top, name))

    # -- checking ------------------------------------------------------------------------
    def check(self, budget_s: float) -> bool:
        """Whether a subfolder or a log-like file appeared or went anywhere checked this time:
        the hot folders, then cold ones for about `budget_s` seconds of this thread's CPU
        time (at least MIN_SWEEP of them)."""
        now = time.monotonic()
        changed = False
        for root in list(self._missing):
            if os.path.isdir(root):
                self._missing.discard(root)
                self._add_tree(root, 0, born=now)
                self._dirty = changed = True
        if self._dirty or now >= self._replan_at:
            self._plan(now)
        for path in self._hot:
            changed |= self._check_one(path, now, relist=self.relist_hot)
        changed |= self._sweep(budget_s, now)
        return changed

    def _sweep(self, budget_s: float, now: float) -> bool:
        cold = self._cold
        if not cold:
            return False
        changed = False
        # CPU time, not wall time: on a loaded machine the sweep costs the same share of a core
        deadline = time.thread_time() + budget_s
        for n in range(len(cold)):
            if n >= MIN_SWEEP and n % 64 == 0 and time.thread_time() >= deadline:
                break
            self._cursor = (self._cursor + 1) % len(cold)
            changed |= self._check_one(cold[self._cursor], now)
        return changed

    def _check_one(self, path: str, now: float, relist: bool = False) -> bool:
        old = self._stamps.get(path)
        if old is None:
            return False  # dropped earlier in this check (its parent went)
        try:
            st = os.stat(path, follow_symlinks=False)
        except OSError:
            self._drop_tree(path)  # gone: its parent's listing changed too
            if path in self.roots:
                self._missing.add(path)  # a root: watched for again
            self._dirty = True
            return True
        racy = old.mtime_ns + RACY_NS >= old.listed_ns  # changed just before it was listed
        same = st.st_mtime_ns == old.mtime_ns and st.st_ino == old.ino
        if same and not racy and not relist:
            return False
        new = self._list(path, old.depth, old.born)
        if new is None:
            self._drop_tree(path)
            self._dirty = True
            return True
        self._stamps[path] = new
        if new.subdirs == old.subdirs and new.logs == old.logs and new.ino == old.ino:
            return False
        for name in old.subdirs - new.subdirs:
            self._drop_tree(os.path.join(path, name))
        for name in new.subdirs - old.subdirs:
            self._add_tree(os.path.join(path, name), old.depth + 1, born=now)
        self._dirty = True
        return True

    def _plan(self, now: float) -> None:
        """Hot: the roots, the folders above every folder with logs, young folders, and the
        log folders themselves while there are not too many; cold: the rest."""
        roots = {r for r in self.roots if r in self._stamps}
        above: set[str] = set()
        own: set[str] = set()
        for path, stamp in self._stamps.items():
            if not stamp.logs:
                continue
            own.add(path)
            parent = os.path.dirname(path)
            while parent in self._stamps and parent not in above:
                above.add(parent)
                if parent in roots:
                    break
                parent = os.path.dirname(parent)
        young = {p for p, s in self._stamps.items() if s.born and now - s.born < YOUNG_FOR}
        hot = roots | above | young
        if len(hot) + len(own) <= HOT_MAX:
            hot |= own
        self._hot = sorted(hot)
        self._cold = [p for p in self._stamps if p not in hot]
        self._cursor %= max(1, len(self._cold))
        # young folders grow old: plan again when the first of them does
        self._replan_at = min(
            (s.born + YOUNG_FOR for p, s in self._stamps.items() if p in young),
            default=float("inf"),
        )
        self._dirty = False


def count_folders(roots: list[Path], limit: int) -> int:
    """How many folders inotify would watch under `roots` (every folder, symlinks not
    followed, as watchdog's recursive watch adds them), counting stops past `limit`."""
    n = 0
    stack = [os.fspath(r) for r in roots if os.path.isdir(r)]
    while stack and n <= limit:
        path = stack.pop()
        n += 1
        try:
            with os.scandir(path) as it:
                for entry in it:
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                    except OSError:
                        continue
        except OSError:
            continue
    return n
