"""``fcgikit serve --reload``: serve the app again when its Python files change (development).

Three processes, each doing one thing::

    fcgikit serve --reload        the reloader: watches the files, checks them, signals
     └── pool master (Arbiter)     binds, forks the workers, replaces them on SIGHUP
          └── worker(s)            import the app and serve it

The reloader forks the pool's master once, at start, before it starts any thread (the
watcher's, the ``--http`` front's), and never again. When a watched ``.py`` file changes it
compiles the changed files; if they compile, it sends the master SIGHUP, and the master
reloads the way it does in production: new workers import the app afresh on the same
listening sockets, and an old worker is stopped only once a new one is ready, so no request
fails during the switch. With ``--workers N`` it is the same, N at a time.

A file that does not compile is reported in one line, once; the running app goes on serving
until a change makes every changed file compile again. (An error that only importing shows,
say a NameError at import time, is the pool's to handle: the new worker fails to start, the
old one keeps serving, and the master tries again with a growing delay.)

What is watched and how: :mod:`fcgikit.server.sources`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import select
import signal
import sys
import traceback
from collections.abc import Callable
from types import FrameType

from fcgikit.errors import ConfigError
from fcgikit.server.sources import POLL_INTERVAL, Watcher, compile_error, shown

log = logging.getLogger("fcgikit.reload")

#: what the reloader passes on to the pool's master (SIGCHLD only wakes it)
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGHUP,
    signal.SIGUSR1,
    signal.SIGTTIN,
    signal.SIGTTOU,
)
#: prctl(2): the signal a process gets when its parent dies
PR_SET_PDEATHSIG = 1
#: the forwarded signals that stop the master (no more reloading then)
STOPPING_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def _stop_with(parent: int) -> None:
    """Have the kernel send this process SIGTERM when ``parent`` dies (Linux's
    PR_SET_PDEATHSIG): a master whose reloader was killed (``kill -9``, a closed terminal)
    would otherwise go on serving old code and holding the socket. Elsewhere, nothing."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # it died before the request was made
        os.kill(os.getpid(), signal.SIGTERM)


# --- the reloader --------------------------------------------------------------------------


class Reloader:
    """Runs ``serve`` (the pool's master) in a child process and sends it SIGHUP when the
    watched files change and compile.

    Args:
        serve: run in the forked child; its return value is the child's exit status.
        watcher: from :func:`~fcgikit.server.sources.make_watcher`, made before
            :meth:`run` (a poller takes its first look then, so no change after it is
            missed).
    """

    def __init__(self, serve: Callable[[], int], watcher: Watcher) -> None:
        self.serve = serve
        self.watcher = watcher
        self.server_pid = 0
        #: files that do not compile, and what was said about each
        self.broken: dict[str, str] = {}
        self.stopping = False
        self.signal_queue: list[int] = []
        self._wake_r = self._wake_w = -1
        self._previous_handlers: dict[int, object] = {}

    def run(self, on_started: Callable[[], None] | None = None) -> int:
        """Serve until the master exits; returns its exit status. ``on_started`` runs once
        the master is forked (threads are safe from then on)."""
        self._start_server()
        try:
            self.watcher = self.watcher.start(self._wake_w)
            watched = ", ".join(self.watcher.roots)
            log.info("fcgikit reload: watching %s (%s)", watched, self.watcher.description)
            if on_started is not None:
                on_started()
            return self._loop()
        finally:
            self.watcher.stop()
            self._finish()

    def _start_server(self) -> None:
        # No signal may reach either process before its handlers are in place: the child
        # would die of a SIGHUP meant as a reload, the parent forget to pass one on.
        signal.pthread_sigmask(signal.SIG_BLOCK, FORWARDED_SIGNALS)
        try:
            sys.stdout.flush()
            sys.stderr.flush()
            self.server_pid = os.fork()
            if self.server_pid == 0:
                self._child()
            self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
            for signum in (*FORWARDED_SIGNALS, signal.SIGCHLD):
                self._previous_handlers[signum] = signal.signal(signum, self._enqueue_signal)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)

    def _child(self) -> None:
        parent = os.getppid()
        code = 1
        try:
            # Until the master has its own handlers: a reload has nothing to replace yet
            # (the workers it is about to start import the new code anyway), and the others
            # would end it; a stop signal does what it asks.
            for signum in FORWARDED_SIGNALS:
                if signum not in STOPPING_SIGNALS:
                    signal.signal(signum, signal.SIG_IGN)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, FORWARDED_SIGNALS)
            _stop_with(parent)
            code = self.serve()
        except ConfigError as exc:
            print(f"fcgikit: {exc}", file=sys.stderr)
            code = 2
        except BaseException:
            traceback.print_exc()
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)

    def _enqueue_signal(self, signum: int, frame: FrameType | None) -> None:
        self.signal_queue.append(signum)

    def _loop(self) -> int:
        while True:
            while self.signal_queue:
                signum = self.signal_queue.pop(0)
                if signum != signal.SIGCHLD:
                    self.stopping |= signum in STOPPING_SIGNALS
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(self.server_pid, signum)
            pid, status = os.waitpid(self.server_pid, os.WNOHANG)
            if pid:
                self.server_pid = 0
                return os.waitstatus_to_exitcode(status)
            changed = self.watcher.changes()
            if changed and not self.stopping:
                self._changed(changed)
            self._wait(min(POLL_INTERVAL, self.watcher.timeout()))

    def _wait(self, timeout: float) -> None:
        with contextlib.suppress(InterruptedError):
            select.select([self._wake_r], [], [], timeout)
        with contextlib.suppress(BlockingIOError):
            while os.read(self._wake_r, 4096):
                pass

    def _changed(self, paths: set[str]) -> None:
        log.debug("fcgikit reload: changed: %s", ", ".join(sorted(map(shown, paths))))
        for path in sorted(paths):
            error = compile_error(path)
            if error is None:
                self.broken.pop(path, None)
            elif self.broken.get(path) != error:
                self.broken[path] = error
                log.error(
                    "fcgikit reload: %s; the app keeps running the code it had until the "
                    "file compiles",
                    error,
                )
        if self.broken:
            # Each check that reloads nothing ends with this (debug) line, as a reload ends
            # with SIGHUP: the error itself is said once, and without it nothing would tell
            # a change that was checked from one still being checked.
            broken = ", ".join(sorted(map(shown, self.broken)))
            log.debug("fcgikit reload: not reloading: %s does not compile", broken)
            return
        names = sorted(map(shown, paths))
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        log.info("fcgikit reload: %s%s changed; reloading the app", ", ".join(names[:3]), more)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.server_pid, signal.SIGHUP)

    def _finish(self) -> None:
        """Leave nothing behind: a master still running (the reloader itself failed) is
        stopped and waited for; the signals and the pipe are handed back."""
        if self.server_pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.server_pid, signal.SIGTERM)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.server_pid, 0)
        signal.set_wakeup_fd(-1)
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
