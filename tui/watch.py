"""Knowing when to read: inotify (watchdog) where it works, polling where it does not.

The watcher never reads a file. File-system events only raise a flag and wake the worker
thread, which then reads (tui.engine); a burst of a thousand events is one wake-up. Two flags:
`created` (a file or folder appeared or moved: walk the roots for new runs) and `modified`
(known files grew: just read them, cheap).

The inotify mask holds only what can mean new data or a new run: create, modify, close-write,
moves, deletes (and attrib, which watchdog ties to modify). Open, access and close-nowrite are
left out: tunetop's own reads (and every directory listing of a walk) made them, thousands a
round on a big tree, and they refilled the kernel's queue until it overflowed (issue 14,
attack 9). The mask is set the supported way, watchdog's `event_filter` (watchdog >= 4).

Polling instead of inotify when asked (`--poll SECONDS`, tunetop.toml `[watch] poll`), when
inotify cannot be used (no inotify, the watch limit reached), when a root is on a network
file system (inotify sees only this machine's writes: a job on another node would look
frozen), when the tree has more folders than the inotify budget (FOLDER_BUDGET), on the first
queue overflow (events were lost, and watchdog's answer, re-adding every watch, walks the
whole tree again and can overflow again), and when events come faster than polling costs.
Each switch is said in the header (`on_change`). While polling, a walk for new runs happens
only when tui.logs.scan_cache says a folder gained or lost a subfolder or a log: a poll of
20,000 idle folders costs a few milliseconds, not a walk.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui.logs.scan_cache import FolderStamps, count_folders

DEFAULT_POLL = 2.0  # seconds, when polling was not asked for but is needed
RESCAN_EVERY = 5.0  # seconds between walks for new runs while polling
MAX_CHANGED_PATHS = 20_000  # beyond this many changed files in one round, read them all
BUSY_EVENTS = 1000  # inotify events a second past which polling takes over
BUSY_POLL = 1.0  # seconds between polls after that switch
SAFETY_READ = 60.0  # seconds between reads of every known file under inotify
# Folders above which tunetop polls instead of watching. Each folder is one inotify watch: a
# watch costs kernel memory and a walk to add it, the limit (max_user_watches) is shared by
# every program of the user (editors, IDEs, other tunetops), and the more folders, the more a
# burst (a sweep starting, a copy) overflows the kernel's queue (max_queued_events, 16,384 by
# default). 5,000 is where the storm of issue 14 began; past it, polling with folder stamps
# costs under 1% of a core (tests/bench/bench_watch_storm.py), so nothing is lost by it.
FOLDER_BUDGET = 5_000
WATCH_SHARE = 4  # never more than a quarter of max_user_watches
SWEEP_SHARE = 0.005  # share of a core, each poll, for statting folders far from any run
FULL_WALK_EVERY = 600.0  # seconds between walks for new runs while polling, changes or not
MAX_USER_WATCHES = "/proc/sys/fs/inotify/max_user_watches"

NETWORK_FS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb",
        "smb2",
        "smb3",
        "smbfs",
        "fuse.sshfs",
        "sshfs",
        "lustre",
        "gpfs",
        "9p",
        "ceph",
        "fuse.ceph",
        "glusterfs",
        "fuse.glusterfs",
        "beegfs",
        "afs",
        "davfs",
        "fuse.s3fs",
        "fuse.gcsfuse",
        "fuse.rclone",
        "fuse.juicefs",
        "panfs",
        "wekafs",
        "orangefs",
        "pvfs2",
        "ncpfs",
        "coda",
        "virtiofs",
    }
)


def _unescape_mount(path: str) -> str:
    # /proc/mounts writes space, tab, newline and backslash as octal escapes
    return (
        path.replace("\\040", " ")
        .replace("\\011", "\t")
        .replace("\\012", "\n")
        .replace("\\134", "\\")
    )


def mount_fs_type(path: Path, mounts_file: str = "/proc/mounts") -> str | None:
    """The file-system type of the mount holding `path` (the longest mount point that is a
    prefix of it), or None where /proc/mounts cannot be read (not Linux)."""
    try:
        with open(mounts_file, encoding="utf-8", errors="replace") as fh:
            entries = fh.read().splitlines()
    except OSError:
        return None
    target = os.path.realpath(path)
    best, best_type = "", None
    for line in entries:
        parts = line.split()
        if len(parts) < 3:
            continue
        mnt = _unescape_mount(parts[1])
        inside = target == mnt or target.startswith(mnt.rstrip("/") + "/")
        if inside and len(mnt) >= len(best):
            best, best_type = mnt, parts[2]
    return best_type


def is_network_fs(path: Path, mounts_file: str = "/proc/mounts") -> bool:
    fs = mount_fs_type(path, mounts_file)
    return fs is not None and (fs in NETWORK_FS or fs.split(".")[-1] in NETWORK_FS)


def inotify_budget(watches_file: str = MAX_USER_WATCHES) -> int:
    """The most folders to watch with inotify: FOLDER_BUDGET, or a quarter of the user's watch
    limit where that is lower."""
    try:
        with open(watches_file, encoding="ascii") as fh:
            limit = int(fh.read().strip())
    except (OSError, ValueError):
        return FOLDER_BUDGET
    return max(1, min(FOLDER_BUDGET, limit // WATCH_SHARE))


def _event_filter() -> list[type[Any]]:
    """The watchdog event classes asked for: what they map to is the inotify mask (watchdog's
    InotifyEmitter.get_event_mask_from_filter), without IN_OPEN, IN_ACCESS, IN_CLOSE_NOWRITE."""
    from watchdog.events import (
        DirCreatedEvent,
        DirDeletedEvent,
        DirMovedEvent,
        FileClosedEvent,
        FileCreatedEvent,
        FileDeletedEvent,
        FileModifiedEvent,
        FileMovedEvent,
    )

    return [
        FileCreatedEvent,
        DirCreatedEvent,
        FileModifiedEvent,
        FileClosedEvent,
        FileMovedEvent,
        DirMovedEvent,
        FileDeletedEvent,
        DirDeletedEvent,
    ]


def _new_observer(on_overflow: Callable[[], None]) -> Any:
    """An InotifyObserver that reports a queue overflow to `on_overflow` instead of re-adding
    every watch (watchdog >= 7 re-walks the whole tree, which on a big tree overflows again).
    The hook is InotifyFD.handle_event, the one place that sees IN_Q_OVERFLOW; on an older
    watchdog (no InotifyFD) a plain observer, with the minute's safety read as the net."""
    from watchdog.observers.inotify import InotifyEmitter, InotifyObserver

    try:
        from watchdog.observers.api import DEFAULT_OBSERVER_TIMEOUT, BaseObserver
        from watchdog.observers.inotify_c import InotifyFD
    except ImportError:
        return InotifyObserver()

    class _OverflowFD(InotifyFD):  # type: ignore[misc]
        def handle_event(self, event: Any) -> None:
            if event.is_queue_overflow:
                on_overflow()
                return
            super().handle_event(event)

    class _Observer(InotifyObserver):  # type: ignore[misc]
        def __init__(self) -> None:
            fd = _OverflowFD()
            fd.start()
            BaseObserver.__init__(
                self, InotifyEmitter, timeout=DEFAULT_OBSERVER_TIMEOUT, inotify_fd=fd
            )
            self._inotify_fd = fd

    return _Observer()


class Watcher:
    """Wakes the worker when something under the roots changed.

    Made on any thread; `start()` (called by the first `wait()`, on the worker's thread)
    does the costly part: counting folders, adding inotify watches or stamping folders."""

    def __init__(
        self,
        roots: list[Path],
        poll: float | None = None,
        on_change: Callable[[str], None] | None = None,
    ) -> None:
        self.roots = [Path(r) for r in roots]
        self._on_change = on_change  # told the new `reason` after each switch (any thread)
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._created = True  # the first round walks the roots
        self._modified = True
        self._paths: set[str] | None = None  # changed files; None = all (the first round too)
        self._window_start, self._window_events = time.monotonic(), 0
        self._too_busy = False
        self._overflowed = False
        self._started = False
        self._stopped = False
        self._observer: Any = None
        self._handler: Any = None
        self._stamps: FolderStamps | None = None
        self._pending_roots: list[Path] = []  # roots that do not exist yet
        self.recent_events: deque[tuple[str, str]] = deque(maxlen=256)  # (kind, path), tests
        self.folders: int | None = None  # folders counted at start (up to the budget + 1)
        self._over_budget = 0  # the budget the tree was found above, if it was
        self.reason = "inotify"
        self.interval: float | None = None  # None = inotify, else seconds between polls
        if poll:
            self.interval = float(poll)
            self.reason = f"polling every {self.interval:g} s (asked for)"
        elif any(r.exists() and is_network_fs(r) for r in self.roots):
            self.interval = DEFAULT_POLL
            self.reason = f"polling every {DEFAULT_POLL:g} s (network file system)"
        self._last_walk = time.monotonic()
        self._wake.set()  # the first round runs at once

    def start(self) -> None:
        """Watch: inotify within the folder budget, else stamps for polling. Idempotent."""
        if self._started or self._stopped:
            return
        self._started = True
        if self.interval is None:
            self._start_inotify()
        if self.interval is not None:
            self._start_polling()
        if self._stopped:  # stop() came while this ran on the worker's thread
            self._stop_observer()
            return
        self._said(self.reason)

    def _said(self, reason: str) -> None:
        if self._on_change is not None:
            self._on_change(reason)

    # -- inotify -------------------------------------------------------------------------
    def _start_inotify(self) -> None:
        budget = inotify_budget()
        folders = count_folders([r for r in self.roots if r.is_dir()], budget)
        self.folders = folders
        if folders > budget:
            self.interval = DEFAULT_POLL
            self._over_budget = budget  # the reason names the count once stamps know it
            self.reason = f"polling every {DEFAULT_POLL:g} s: above the inotify budget"
            return
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler

            event_filter = _event_filter()
        except ImportError:
            self.interval = DEFAULT_POLL
            self.reason = f"polling every {DEFAULT_POLL:g} s (no inotify here)"
            return

        watcher = self

        class _Handler(FileSystemEventHandler):  # type: ignore[misc]
            def on_any_event(self, event: FileSystemEvent) -> None:
                kind = event.event_type
                watcher.recent_events.append((kind, os.fsdecode(event.src_path)))
                if kind in ("opened", "closed_no_write"):
                    return  # reads are not changes (not in the mask: a second guard)
                watcher._count_event()
                watcher._note_path(event.src_path)
                if kind == "moved":
                    watcher._note_path(getattr(event, "dest_path", ""))
                watcher._flag(created=kind in ("created", "moved", "deleted"))

        try:
            observer = _new_observer(self._note_overflow)
            handler = _Handler()
            for root in self.roots:
                if root.is_dir():
                    target, recursive = root, True
                elif root.is_file():
                    target, recursive = root.parent, False
                else:
                    self._pending_roots.append(root)
                    continue
                observer.schedule(
                    handler, str(target), recursive=recursive, event_filter=event_filter
                )
            observer.daemon = True
            observer.start()
        except (OSError, RuntimeError, ImportError) as exc:  # no inotify, max_user_watches
            self.interval = DEFAULT_POLL
            self.reason = f"polling every {DEFAULT_POLL:g} s (inotify unavailable: {exc})"
            return
        self._observer = observer
        self._handler = handler
        self.reason = "inotify"

    def _note_overflow(self) -> None:
        """The kernel dropped events (IN_Q_OVERFLOW), on watchdog's reading thread: the
        worker switches to polling at its next wake-up, which this is."""
        self._overflowed = True
        self._wake.set()

    def _count_event(self) -> None:
        """Inotify events cost Python work each (watchdog dispatches them one by one): past
        BUSY_EVENTS a second, polling is cheaper, and the screen stays responsive."""
        now = time.monotonic()
        if now - self._window_start >= 1.0:
            self._window_start, self._window_events = now, 0
        self._window_events += 1
        if self._window_events > BUSY_EVENTS and not self._too_busy:
            self._too_busy = True
            self._wake.set()

    def _stop_observer(self) -> None:
        obs, self._observer = self._observer, None
        if obs is not None:
            try:
                obs.stop()
                obs.join(timeout=2)
            except RuntimeError:
                pass

    def _switch_to_polling(self) -> None:
        """On the worker's thread: stop inotify, stamp the folders, walk once (what the lost
        events said is unknown), and say why."""
        self._stop_observer()
        if self._overflowed:
            self.interval = DEFAULT_POLL
            self.reason = f"polling every {DEFAULT_POLL:g} s: inotify queue overflowed"
        elif self._over_budget:  # a root that appeared late brought too many folders
            self.interval = DEFAULT_POLL
        else:
            self.interval = BUSY_POLL
            self.reason = (
                f"polling every {BUSY_POLL:g} s (over {BUSY_EVENTS} file events a "
                "second: cheaper than inotify)"
            )
        self._start_polling()
        with self._lock:
            self._paths = None
            self._created = self._modified = True
        self._wake.set()
        self._said(self.reason)

    # -- polling -------------------------------------------------------------------------
    def _start_polling(self) -> None:
        folders = [r for r in self.roots if not r.is_file()]  # a file root: nothing to find
        network = any(r.exists() and is_network_fs(r) for r in folders)
        self._stamps = FolderStamps(folders, relist_hot=network) if folders else None
        if self._stamps is not None:
            n = self._stamps.build()  # before the first walk: what comes after is a change
            if self._over_budget:
                self.reason = (
                    f"polling every {self.interval:g} s: {n:,} folders is above the "
                    f"inotify budget ({self._over_budget:,})"
                )
        self._last_walk = time.monotonic()

    def _poll_round(self) -> bool:
        """Whether this poll should walk for new runs: a folder gained or lost a subfolder or
        a log, or the last walk is FULL_WALK_EVERY old (a net for what stamps cannot see)."""
        assert self.interval is not None
        created = False
        if self._stamps is not None:
            created = self._stamps.check(self.interval * SWEEP_SHARE)
        now = time.monotonic()
        if now - self._last_walk >= FULL_WALK_EVERY:
            created = True
        if created:
            self._last_walk = now
        return created

    # -- changed paths ---------------------------------------------------------------------
    def _note_path(self, path: str | bytes) -> None:
        """Remember which file changed, so the worker reads only that one (with thousands of
        run folders, statting every file each round would starve the screen)."""
        if not path:
            return
        with self._lock:
            if self._paths is None:
                return  # already "everything"
            self._paths.add(os.fsdecode(path))
            if len(self._paths) > MAX_CHANGED_PATHS:
                self._paths = None

    def take_paths(self) -> set[str] | None:
        """The files changed since the last call; None means unknown (polling, or too many):
        read every known file."""
        with self._lock:
            paths = self._paths
            self._paths = set() if self.interval is None else None
        return paths

    def _flag(self, created: bool) -> None:
        with self._lock:
            if created:
                self._created = True
            self._modified = True
        self._wake.set()

    def _check_pending_roots(self) -> None:
        """A root that did not exist at start is watched once it appears."""
        if not self._pending_roots or self._observer is None:
            return
        budget = inotify_budget()
        for root in list(self._pending_roots):
            if root.is_dir() and count_folders([root], budget) > budget:
                self._over_budget = budget
                self._switch_to_polling()
                return
            if root.exists():
                try:
                    target = root if root.is_dir() else root.parent
                    self._observer.schedule(
                        self._handler,
                        str(target),
                        recursive=root.is_dir(),
                        event_filter=_event_filter(),
                    )
                except OSError:
                    continue
                self._pending_roots.remove(root)
                self._flag(created=True)

    # -- the worker's side -----------------------------------------------------------------
    def wait(self, stop: threading.Event) -> tuple[bool, bool]:
        """Block until there is something to read (or `stop` is set). Returns (created,
        modified): walk for new runs / read known files. Idle with inotify = no wake-ups
        except every few seconds while a root is still missing, and one read of everything a
        minute (inotify may have dropped events). Polling: one wake-up an interval, a walk
        only when the folder stamps changed."""
        self.start()
        while not stop.is_set():
            if self._observer is not None and (self._too_busy or self._overflowed):
                self._switch_to_polling()
            if self.interval is not None:
                timeout: float | None = self.interval
            elif self._pending_roots:
                timeout = DEFAULT_POLL
            else:
                # inotify can drop events (its queue overflows in a burst): every minute,
                # read every known file once anyway; ~a stat per file, nothing when unchanged
                timeout = SAFETY_READ
            woke = self._wake.wait(timeout)
            if stop.is_set():
                break
            if not woke:
                if self.interval is None and not self._pending_roots:
                    with self._lock:
                        self._paths = None
                    return False, True
                if self.interval is not None:
                    return self._poll_round(), True
                self._check_pending_roots()
                continue
            if self._observer is not None and (self._too_busy or self._overflowed):
                continue  # switch first: the round after it reads everything
            with self._lock:
                self._wake.clear()
                created, modified = self._created, self._modified
                self._created = self._modified = False
            return created, modified
        return False, False

    def nudge(self, created: bool = True) -> None:
        """Ask for a round now (a key press, a test)."""
        self._flag(created)

    def stop(self) -> None:
        self._stopped = True
        self._stop_observer()
        self._wake.set()
