"""The app's source files, for ``--reload``: which are watched, how a change is noticed,
and whether a changed file compiles.

Only ``.py`` files count, outside hidden directories, ``__pycache__``, ``node_modules`` and
``site-packages`` (a virtualenv inside the app's directory). With watchfiles installed
(``pip install 'fcgikit[reload]'``) the kernel says what changed (inotify, on a thread of
the reloader); without it the files' modification times, sizes and inodes are compared once
a second. Both apply the same rule (:func:`is_watched`, :func:`scan`).
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import logging
import os
import sys
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Protocol

from fcgikit.errors import ConfigError

log = logging.getLogger("fcgikit.reload")

#: seconds between two scans when polling
POLL_INTERVAL = 1.0
#: directories never looked into (besides hidden ones): caches and installed packages
SKIPPED_DIRECTORIES = frozenset({"__pycache__", "node_modules", "site-packages"})
#: how long watchfiles may take to start watching before we poll instead
WATCHFILES_START = 10.0


# --- what is watched -----------------------------------------------------------------------


def _skipped(name: str) -> bool:
    return name.startswith(".") or name in SKIPPED_DIRECTORIES


def is_watched(path: str, roots: Sequence[str]) -> bool:
    """A ``.py`` file under one of ``roots``, with no hidden or skipped directory between."""
    for root in roots:
        relative = os.path.relpath(path, root)
        parts = relative.split(os.sep)
        if parts[0] != ".." and parts[-1].endswith(".py"):
            return not any(_skipped(part) for part in parts)
    return False


def app_directories(app_spec: str) -> list[str]:
    """Where the app's code is: its top-level package's directory, or the directory of a
    single-module app; the working directory when it cannot be found. Found the way the
    import will find it (``sys.path``), without importing anything."""
    top = app_spec.partition(":")[0].split(".")[0]
    spec = importlib.machinery.PathFinder.find_spec(top, sys.path) if top else None
    if spec is not None and spec.submodule_search_locations:
        return [os.path.abspath(p) for p in spec.submodule_search_locations]
    if spec is not None and spec.origin and os.path.isfile(spec.origin):
        return [os.path.dirname(os.path.abspath(spec.origin))]
    return [os.getcwd()]


def watched_directories(app_spec: str, reload_dirs: Iterable[str]) -> list[str]:
    """``--reload-dir`` values (each must be a directory), or the app's directory."""
    directories = []
    for directory in reload_dirs:
        if not os.path.isdir(directory):
            raise ConfigError(f"--reload-dir {directory}: no such directory")
        directories.append(os.path.abspath(directory))
    return directories or app_directories(app_spec)


def scan(roots: Sequence[str]) -> dict[str, tuple[int, int, int]]:
    """Every watched file's (mtime in ns, size, inode): an editor that saves by renaming
    a new file into place changes the inode even within one mtime tick."""
    stamps = {}
    for root in roots:
        for directory, subdirectories, files in os.walk(root):
            subdirectories[:] = [name for name in subdirectories if not _skipped(name)]
            for name in files:
                if name.endswith(".py") and not _skipped(name):
                    path = os.path.join(directory, name)
                    with contextlib.suppress(OSError):  # gone since the listing
                        st = os.stat(path)
                        stamps[path] = (st.st_mtime_ns, st.st_size, st.st_ino)
    return stamps


def compile_error(path: str) -> str | None:
    """``app.py:3: invalid syntax`` when the file does not compile; None when it does, or is
    gone (importing will say what is missing)."""
    try:
        source = Path(path).read_bytes()
    except OSError:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # SyntaxWarnings are the app's business
            compile(source, path, "exec", dont_inherit=True)
    except SyntaxError as exc:
        where = f"{shown(path)}:{exc.lineno}" if exc.lineno else shown(path)
        return f"{where}: {exc.msg}"
    except ValueError as exc:  # a NUL byte, where Python says so with ValueError
        return f"{shown(path)}: {exc}"
    return None


def shown(path: str) -> str:
    """``path`` relative to the working directory when it is under it, for the log."""
    relative = os.path.relpath(path)
    return path if relative.startswith("..") else relative


# --- watchers ------------------------------------------------------------------------------


class Watcher(Protocol):
    #: the directories watched
    roots: list[str]
    #: how it watches, for the log
    description: str

    def start(self, wake_fd: int) -> Watcher:
        """Begin; write a byte to ``wake_fd`` when there are changes. Returns the watcher
        that does the job (a poller if watchfiles failed)."""

    def timeout(self) -> float:
        """Seconds until :meth:`changes` wants calling, changes or not."""

    def changes(self) -> set[str]:
        """The watched files changed (added, removed) since the last call."""

    def stop(self) -> None: ...


class PollingWatcher:
    """Compares :func:`scan` with the one before, every :data:`POLL_INTERVAL` seconds."""

    def __init__(self, roots: Sequence[str], why: str = "") -> None:
        self.roots = list(roots)
        self.description = f"polling every {POLL_INTERVAL:g}s{why}"
        self.stamps = scan(self.roots)  # now, so that a change from here on is seen
        self.next_scan = time.monotonic() + POLL_INTERVAL

    def start(self, wake_fd: int) -> Watcher:
        return self

    def timeout(self) -> float:
        return max(0.0, self.next_scan - time.monotonic())

    def changes(self) -> set[str]:
        if time.monotonic() < self.next_scan:
            return set()
        self.next_scan = time.monotonic() + POLL_INTERVAL
        stamps, before = scan(self.roots), self.stamps
        self.stamps = stamps
        return {p for p in stamps.keys() | before.keys() if stamps.get(p) != before.get(p)}

    def stop(self) -> None:
        pass


class WatchfilesWatcher:
    """watchfiles on a thread of the reloader; the changes it reports wait in a set."""

    description = "watchfiles"

    def __init__(self, roots: Sequence[str]) -> None:
        import watchfiles  # ImportError: not installed

        self.watch = watchfiles.watch
        self.roots = list(roots)
        self.pending: set[str] = set()
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.watching = threading.Event()
        self.failure: BaseException | None = None
        self.thread: threading.Thread | None = None

    def start(self, wake_fd: int) -> Watcher:
        self.thread = threading.Thread(
            target=self._run, args=(wake_fd,), name="fcgikit-reload-watch", daemon=True
        )
        self.thread.start()
        self.watching.wait(WATCHFILES_START)
        if self.watching.is_set() and self.failure is None:
            return self
        self.stop()
        why = self.failure or "it did not start in time"
        log.warning("fcgikit reload: watchfiles failed (%s); polling instead", why)
        return PollingWatcher(self.roots)

    def _run(self, wake_fd: int) -> None:
        roots = self.roots
        try:
            for found in self.watch(
                *roots,
                watch_filter=lambda change, path: is_watched(path, roots),
                stop_event=self.stopping,
                rust_timeout=250,
                yield_on_timeout=True,  # the first (empty) yield says it is watching
                raise_interrupt=False,
            ):
                self.watching.set()
                if found:
                    with self.lock:
                        self.pending.update(path for _, path in found)
                    with contextlib.suppress(BlockingIOError):
                        os.write(wake_fd, b"w")
        except Exception as exc:
            self.failure = exc
            self.watching.set()

    def timeout(self) -> float:
        return POLL_INTERVAL  # changes wake the loop; this only bounds the wait

    def changes(self) -> set[str]:
        with self.lock:
            found, self.pending = self.pending, set()
        return found

    def stop(self) -> None:
        self.stopping.set()
        if self.thread is not None:
            self.thread.join(5)


def make_watcher(roots: Sequence[str], engine: str) -> Watcher:
    """The watcher ``--reload-engine`` asks for; ConfigError if it cannot be had."""
    if engine != "poll":
        try:
            return WatchfilesWatcher(roots)
        except ImportError:
            if engine == "watchfiles":
                raise ConfigError(
                    "--reload-engine watchfiles: watchfiles is not installed in "
                    f"{sys.executable}; pip install 'fcgikit[reload]', or use "
                    "--reload-engine poll"
                ) from None
    hint = "; pip install 'fcgikit[reload]' to be told of changes instead"
    return PollingWatcher(roots, hint if engine == "auto" else "")
