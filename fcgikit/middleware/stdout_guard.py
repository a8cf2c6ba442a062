"""StdoutGuard and guard_stdout: keep ``print()`` out of the response.

Run as CGI, a process's fd 1 *is* the HTTP response: a stray ``print('debug')`` before the
headers gives Apache's "malformed header from script" 500, one after them ends up in the
body with the wrong Content-Length. Under FastCGI fd 1 is whatever the web server left there
(its error log for mod_fcgid, ``/dev/null`` for lighttpd's ``bin-path``, h2o's own stdout), so
the output is lost or lands somewhere surprising. Either way it should go where the rest of
the request's diagnostics go.

:func:`guard_stdout` does that for the whole process, once:

1. it keeps a private duplicate of the original fd 1 and returns it as a binary file, for
   the CGI-mode server to write the response to (the duplicate is not inherited by child
   processes);
2. it points fd 1 at fd 2 (``os.dup2``), so C extensions and subprocesses that write to
   fd 1 end up in the error log instead of the response;
3. it replaces ``sys.stdout`` with a text stream that collects whole lines and sends each to
   the current request's ``wsgi.errors`` or, outside a request, to the logger
   ``fcgikit.stdout`` at WARNING (so an app with no logging set up still sees its prints in
   the server's error log). Its ``fileno()`` is 2 and ``isatty()`` is False, and
   ``sys.stdout.buffer`` takes bytes.

:class:`StdoutGuard` is the middleware: it installs the guard at its first request, when the
app is being served (building the app, as ``flask routes`` or a test does, leaves stdout
alone), and marks which request is running, also while the response iterable is consumed,
so each line reaches that request's ``wsgi.errors``. fcgikit's CGI mode installs the guard
itself before the app runs, since there fd 1 is the response. With ``strict=True`` any
write to ``sys.stdout`` during a request raises :class:`StdoutRestrictedError` instead,
like mod_wsgi's ``WSGIRestrictStdout On``; outside requests it logs, because libraries
probe and write to ``sys.stdout`` at import time.

:func:`unguard_stdout` puts everything back (for tests and for embedding).

.. code-block:: python

    from fcgikit.middleware import StdoutGuard

    app.wsgi_app = StdoutGuard(app.wsgi_app)

>>> import io
>>> from werkzeug.test import Client
>>> def chatty(environ, start_response):
...     print("looking up user 42")
...     start_response("200 OK", [("Content-Type", "text/plain")])
...     return [b"hello"]
>>> errors = io.StringIO()
>>> response = Client(StdoutGuard(chatty)).get("/", errors_stream=errors)
>>> unguard_stdout()  # doctest prints results to sys.stdout, so put it back first
>>> response.text, errors.getvalue()
('hello', 'looking up user 42\\n')
"""

from __future__ import annotations

import contextlib
import contextvars
import io
import logging
import os
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, BinaryIO, TextIO

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

__all__ = ["StdoutGuard", "StdoutRestrictedError", "guard_stdout", "unguard_stdout"]

logger = logging.getLogger("fcgikit.stdout")


class StdoutRestrictedError(io.UnsupportedOperation):
    """A write to ``sys.stdout`` under ``StdoutGuard(strict=True)`` (an ``OSError``).

    Not a :class:`fcgikit.errors.FcgikitError`: the middleware imports nothing else of
    fcgikit's, so it can be used without the server.
    """


#: A "line" longer than this (a progress bar, a dump without newlines) is passed on in
#: pieces rather than held in memory until a newline comes.
MAX_LINE = 8192


class _Lines:
    """Bytes in, whole lines (decoded as UTF-8, bad bytes escaped) out."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def feed(self, data: bytes) -> list[str]:
        self.pending += data
        *lines, rest = self.pending.split(b"\n")
        while len(rest) >= MAX_LINE:
            lines.append(rest[:MAX_LINE])
            rest = rest[MAX_LINE:]
        self.pending = rest
        return [line.decode("utf-8", "backslashreplace") for line in lines]

    def drain(self) -> list[str]:
        """The partial line, if any, as a line of its own."""
        return self.feed(b"\n") if self.pending else []


class _RequestSink:
    """Where ``sys.stdout`` writes go while one request runs."""

    def __init__(self, errors: IO[str] | None, strict: bool) -> None:
        self.errors = errors
        self.strict = strict
        self.lines = _Lines()

    def write(self, data: bytes) -> None:
        if self.strict:
            raise StdoutRestrictedError(
                "print() and sys.stdout are restricted during requests by "
                "StdoutGuard(strict=True); use logging or environ['wsgi.errors']"
            )
        self._emit(self.lines.feed(data))

    def flush(self) -> None:
        self._emit(self.lines.drain())

    def _emit(self, lines: list[str]) -> None:
        for line in lines:
            if self.errors is None:
                _log_line(line)
            else:
                self.errors.write(line + "\n")


class _ProcessSink:
    """Where ``sys.stdout`` writes go outside requests: the ``fcgikit.stdout`` logger."""

    def __init__(self, strict: bool) -> None:
        self.strict = strict
        self._per_thread = threading.local()

    def _lines(self) -> _Lines:
        lines: _Lines | None = getattr(self._per_thread, "lines", None)
        if lines is None:
            lines = self._per_thread.lines = _Lines()
        return lines

    def write(self, data: bytes) -> None:
        if self.strict:
            raise StdoutRestrictedError(
                "print() and sys.stdout are restricted by guard_stdout(strict=True); "
                "use logging instead"
            )
        for line in self._lines().feed(data):
            _log_line(line)

    def flush(self) -> None:
        for line in self._lines().drain():
            _log_line(line)


_current_request: contextvars.ContextVar[_RequestSink | None] = contextvars.ContextVar(
    "fcgikit_stdout_request", default=None
)
_logging = threading.local()


def _log_line(line: str) -> None:
    if getattr(_logging, "busy", False):
        # A logging handler writes to sys.stdout, which is us: send the line to stderr
        # rather than loop.
        if sys.stderr is not None:
            sys.stderr.write(line + "\n")
        return
    _logging.busy = True
    try:
        logger.warning("%s", line)
    finally:
        _logging.busy = False


class _GuardedStdoutBuffer(io.BufferedIOBase):
    """The byte layer under the guarded ``sys.stdout`` (also its ``.buffer``)."""

    def __init__(self, process_sink: _ProcessSink, fileno: int) -> None:
        super().__init__()
        self._process_sink = process_sink
        self._fileno = fileno

    def _sink(self) -> _RequestSink | _ProcessSink:
        return _current_request.get() or self._process_sink

    def writable(self) -> bool:
        return True

    def write(self, data: ReadableBuffer) -> int:
        chunk = bytes(data)
        self._sink().write(chunk)
        return len(chunk)

    def flush(self) -> None:
        self._sink().flush()

    def fileno(self) -> int:
        return self._fileno

    @property
    def name(self) -> str:
        return "<stdout>"

    def isatty(self) -> bool:
        return False


@dataclass
class _Installation:
    response: BinaryIO
    stdout_fd: int
    restore_fd: int | None
    previous_stdout: TextIO | None
    guarded_stdout: TextIO


_lock = threading.Lock()
_installation: _Installation | None = None


def guard_stdout(strict: bool = False) -> BinaryIO:
    """Guard the process's stdout (see the module documentation) and return a binary file on
    a private duplicate of the original fd 1, for a CGI-mode server to write the response to.

    Idempotent: later calls return the same file and do not change ``strict``.

    :param strict: Raise :class:`StdoutRestrictedError` on writes to ``sys.stdout`` made
        outside requests too, instead of logging them.
    """
    return _install(strict, stdout_fd=1, stderr_fd=2)


def _install(strict: bool, stdout_fd: int, stderr_fd: int) -> BinaryIO:
    global _installation
    with _lock:
        if _installation is not None:
            return _installation.response
        response_fd = _duplicate(stdout_fd)
        restore_fd = _duplicate(stdout_fd)
        _redirect(stdout_fd, onto=stderr_fd)
        previous = sys.stdout
        if previous is not None:
            # Text printed before now was buffered for fd 1, which is now stderr.
            with contextlib.suppress(OSError, ValueError):
                previous.flush()
        raw = _GuardedStdoutBuffer(_ProcessSink(strict), stderr_fd)
        guarded = io.TextIOWrapper(
            raw, encoding="utf-8", errors="backslashreplace", write_through=True
        )
        sys.stdout = guarded
        if response_fd is None:
            response: BinaryIO = open(os.devnull, "wb")  # noqa: SIM115 (kept open by design)
        else:
            response = os.fdopen(response_fd, "wb")
        _installation = _Installation(response, stdout_fd, restore_fd, previous, guarded)
        return response


def unguard_stdout() -> None:
    """Undo :func:`guard_stdout`: restore ``sys.stdout`` (unless something else replaced it
    since) and fd 1, and close the file it returned. Does nothing if not guarded."""
    global _installation
    with _lock:
        installation, _installation = _installation, None
        if installation is None:
            return
        installation.guarded_stdout.flush()
        if sys.stdout is installation.guarded_stdout:
            sys.stdout = installation.previous_stdout
        if installation.restore_fd is None:
            os.close(installation.stdout_fd)  # it was closed before we opened it
        else:
            os.dup2(installation.restore_fd, installation.stdout_fd)
            os.close(installation.restore_fd)
        installation.response.close()


def _duplicate(fd: int) -> int | None:
    try:
        return os.dup(fd)
    except OSError:  # fd 1 was closed: there is nothing to keep
        return None


def _redirect(fd: int, onto: int) -> None:
    try:
        os.dup2(onto, fd)
    except OSError:  # no stderr either: keep fd 1 open on /dev/null so nothing reuses it
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, fd)
        os.close(devnull)


class StdoutGuard:
    """Send ``print()`` output made during a request to that request's ``wsgi.errors``.

    :param app: The WSGI application to call.
    :param strict: Raise :class:`StdoutRestrictedError` on any write to ``sys.stdout``
        during a request, instead of forwarding it.

    Its first request calls :func:`guard_stdout` (once per process); creating one changes
    nothing, so a process that only builds the app (a Flask CLI command, a script, a test)
    keeps its stdout byte for byte.
    """

    def __init__(self, app: WSGIApplication, strict: bool = False) -> None:
        self.app = app
        self.strict = strict

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if _installation is None:
            # Serving starts here, not when the app is built: a `flask routes`, a script or
            # a test that only builds the app keeps its stdout as it is.
            guard_stdout()
        sink = _RequestSink(environ.get("wsgi.errors"), self.strict)
        token = _current_request.set(sink)
        try:
            result = self.app(environ, start_response)
        except BaseException:
            sink.flush()
            raise
        finally:
            _current_request.reset(token)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if isinstance(file_wrapper, type) and isinstance(result, file_wrapper):
            # A file being sent runs no app code; keep it recognisable for sendfile.
            sink.flush()
            return result
        return _GuardedResponse(result, sink)


class _GuardedResponse:
    """The app's response iterable, run with its request marked as current."""

    def __init__(self, result: Iterable[bytes], sink: _RequestSink) -> None:
        self._result = result
        self._iterator: Iterator[bytes] | None = None
        self._sink = sink

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        token = _current_request.set(self._sink)
        try:
            if self._iterator is None:
                self._iterator = iter(self._result)
            return next(self._iterator)
        finally:
            _current_request.reset(token)

    def close(self) -> None:
        token = _current_request.set(self._sink)
        try:
            close: Any = getattr(self._result, "close", None)
            if close is not None:
                close()
        finally:
            _current_request.reset(token)
            self._sink.flush()
