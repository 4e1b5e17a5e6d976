"""Knowing when to read: inotify (watchdog) where it works, polling where it does not.

The watcher never reads a file. File-system events only raise a flag and wake the worker
thread, which then reads (tui.engine); a burst of a thousand events is one wake-up. Two flags:
`created` (a file or folder appeared or moved: walk the roots for new runs) and `modified`
(known files grew: just read them, cheap).

Polling instead of inotify when asked (`--poll SECONDS`, tunetop.toml `[watch] poll`), when
inotify cannot be used (no inotify, the watch limit reached), or when a root is on a network
file system, where inotify sees only this machine's writes and a training job on another node
would look frozen.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

DEFAULT_POLL = 2.0  # seconds, when polling was not asked for but is needed
RESCAN_EVERY = 5.0  # seconds between walks for new runs while polling
MAX_CHANGED_PATHS = 20_000  # beyond this many changed files in one round, read them all
BUSY_EVENTS = 1000  # inotify events a second past which polling takes over
BUSY_POLL = 1.0  # seconds between polls after that switch
SAFETY_READ = 60.0  # seconds between reads of every known file under inotify

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


class Watcher:
    """Wakes the worker when something under the roots changed."""

    def __init__(self, roots: list[Path], poll: float | None = None) -> None:
        self.roots = [Path(r) for r in roots]
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._created = True  # the first round walks the roots
        self._modified = True
        self._paths: set[str] | None = None  # changed files; None = all (the first round too)
        self._window_start, self._window_events = time.monotonic(), 0
        self._too_busy = False
        self._observer: object | None = None
        self._pending_roots: list[Path] = []  # roots that do not exist yet
        self.reason = ""
        self.interval: float | None = None  # None = inotify, else seconds between polls
        if poll:
            self.interval = float(poll)
            self.reason = f"polling every {self.interval:g} s (asked for)"
        elif any(r.exists() and is_network_fs(r) for r in self.roots):
            self.interval = DEFAULT_POLL
            self.reason = f"polling every {DEFAULT_POLL:g} s (network file system)"
        else:
            self._start_inotify()
        self._last_rescan = time.monotonic()
        self._wake.set()  # the first round runs at once

    # -- inotify -------------------------------------------------------------------------
    def _start_inotify(self) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers.inotify import InotifyObserver
        except ImportError:
            self.interval = DEFAULT_POLL
            self.reason = f"polling every {DEFAULT_POLL:g} s (no inotify here)"
            return

        watcher = self

        class _Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                kind = event.event_type
                if kind in ("opened", "closed_no_write"):
                    return  # reads (our own included) are not changes
                watcher._count_event()
                watcher._note_path(event.src_path)
                if kind == "moved":
                    watcher._note_path(getattr(event, "dest_path", ""))
                watcher._flag(created=kind in ("created", "moved", "deleted"))

        try:
            observer = InotifyObserver()
            handler = _Handler()
            for root in self.roots:
                if root.is_dir():
                    observer.schedule(handler, str(root), recursive=True)
                elif root.is_file():
                    observer.schedule(handler, str(root.parent), recursive=False)
                else:
                    self._pending_roots.append(root)
            observer.daemon = True
            observer.start()
        except (OSError, RuntimeError) as exc:  # no inotify, or max_user_watches reached
            self.interval = DEFAULT_POLL
            self.reason = f"polling every {DEFAULT_POLL:g} s (inotify unavailable: {exc})"
            return
        self._observer = observer
        self._handler = handler
        self.reason = "inotify"

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
                obs.stop()  # type: ignore[attr-defined]
                obs.join(timeout=2)  # type: ignore[attr-defined]
            except RuntimeError:
                pass

    def _switch_to_polling(self) -> None:
        self._stop_observer()
        self.interval = BUSY_POLL
        self.reason = (
            f"polling every {BUSY_POLL:g} s (over {BUSY_EVENTS} file events a "
            "second: cheaper than inotify)"
        )
        with self._lock:
            self._paths = None
            self._modified = True

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
        for root in list(self._pending_roots):
            if root.exists():
                try:
                    target = root if root.is_dir() else root.parent
                    self._observer.schedule(  # type: ignore[attr-defined]
                        self._handler, str(target), recursive=root.is_dir()
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
        minute (inotify may have dropped events)."""
        while not stop.is_set():
            if self._too_busy and self._observer is not None:
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
                    now = time.monotonic()
                    rescan = now - self._last_rescan >= max(RESCAN_EVERY, self.interval)
                    if rescan:
                        self._last_rescan = now
                    return rescan, True
                self._check_pending_roots()
                continue
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
        self._stop_observer()
        self._wake.set()
