"""Logging set-up shared by the single-process server, the prefork master and its workers.

fcgikit logs through its own loggers (``fcgikit.*``) and configures only them: one handler
on ``fcgikit``, its level, and no propagation. The root logger and the app's loggers are the
app's, as under flup: an app that sets nothing up keeps Python's defaults (warnings and
worse, bare, on stderr), one that sends its lines somewhere gets them there once and not
also in fcgikit's log with fcgikit's prefix, and one that configures the root logger does not
get fcgikit's lines a second time through it.

An operator's ``--log-config`` file replaces those defaults
(:func:`fcgikit.server.log_config.apply_log_config`).

The access log (``fcgikit.access``) writes one line per request in one of
the formats ``--access-log-format`` names (:data:`ACCESS_FORMAT`, ``combined_line``,
``json_line``), only where one is configured: otherwise nothing of it runs.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from collections.abc import Mapping

log = logging.getLogger("fcgikit.server")
#: the parent of every logger fcgikit logs to; the only one configure_logging touches
fcgikit_log = logging.getLogger("fcgikit")
#: the handler configure_logging added, replaced when it is called again
_handler: logging.Handler | None = None


def configure_logging(level: int, log_file: str | None) -> None:
    """Send fcgikit's lines at ``level`` and above to ``log_file`` (None or ``-``: stderr).

    A handler someone else gave the ``fcgikit`` logger (the app's logging configuration
    names it) wins: then nothing is changed, not even the level.
    """
    global _handler
    if any(handler is not _handler for handler in fcgikit_log.handlers):
        return
    handler = _stderr_or_file(log_file)
    # %(process)d, not the pid at configuration time: the workers log through this too.
    handler.setFormatter(logging.Formatter("fcgikit[%(process)d] %(levelname)s %(message)s"))
    if _handler is not None:
        fcgikit_log.removeHandler(_handler)
        _handler.close()
    fcgikit_log.addHandler(handler)
    _handler = handler
    fcgikit_log.setLevel(level)
    fcgikit_log.propagate = False


def _stderr_or_file(target: str | None) -> logging.Handler:
    """A handler for stderr (``target`` None or ``-``, as in ``--log-file -``), else for the
    file at ``target``, appended to."""
    if target is None or target == "-":
        return logging.StreamHandler(sys.stderr)
    return logging.FileHandler(target)


def enable_fcgikit_loggers() -> None:
    """Undo what the app's logging set-up did to fcgikit's loggers: ``dictConfig`` and
    ``fileConfig`` disable every logger that exists when they run unless told not to
    (``disable_existing_loggers``, as in Flask's documented example), and fcgikit's exist
    by the time fcgikit imports the app. That would silence the server, the tracebacks of
    the app's own failures included. Called once the app is loaded."""
    for name, logger in list(logging.Logger.manager.loggerDict.items()):
        if isinstance(logger, logging.Logger) and name.partition(".")[0] == "fcgikit":
            logger.disabled = False


def reopen_log_files() -> None:
    """SIGUSR1: reopen every logging file handler (after logrotate moved the file).

    The new file is opened before the old one is closed, so a file that cannot be opened
    (permissions after ``--user``) leaves logging where it was, with one line saying so.
    """
    seen: set[int] = set()
    loggers: list[logging.Logger | logging.PlaceHolder] = [logging.getLogger()]
    loggers += list(logging.Logger.manager.loggerDict.values())
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):
            if not isinstance(handler, logging.FileHandler) or id(handler) in seen:
                continue
            seen.add(id(handler))
            try:
                stream = handler._open()
            except OSError as exc:
                log.error(
                    "cannot reopen %s: %s; still logging to the old file",
                    handler.baseFilename,
                    exc.strerror,
                )
                continue
            handler.acquire()
            try:
                old, handler.stream = handler.stream, stream
            finally:
                handler.release()
            if old is not None:
                old.close()


#: The access log line. Fields: ISO 8601 time (UTC, ms), REMOTE_ADDR, the request line as
#: ``"METHOD REQUEST_URI"``, status, response body bytes, duration in ms, worker pid:
#: ``2026-11-21T07:30:00.123Z 127.0.0.1 "GET /x?y=1" 200 12 0.4ms 12345``
ACCESS_FORMAT = '%s %s "%s %s" %d %d %.1fms %d'

access_log = logging.getLogger("fcgikit.access")


def configure_access_log(target: str | None) -> None:
    """Send ``fcgikit.access`` to ``target`` (a path, or ``-`` for stderr), and nowhere else."""
    for handler in list(access_log.handlers):
        access_log.removeHandler(handler)
        handler.close()
    if target is None:
        return
    handler = _stderr_or_file(target)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


def iso_time(now: float) -> str:
    """``2026-11-21T07:30:00.123Z``: ``now`` (time.time()) in UTC, to the millisecond."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


def request_uri(params: Mapping[bytes, bytes]) -> bytes:
    """The request's URI as the client sent it: REQUEST_URI, else SCRIPT_NAME + PATH_INFO."""
    return params.get(b"REQUEST_URI") or params.get(b"SCRIPT_NAME", b"") + params.get(
        b"PATH_INFO", b""
    )


#: what nginx escapes in its combined log, as \xHH: control characters, '"', '\\' and
#: every byte past ASCII (the request line and the headers are the client's: a newline or a
#: quote would forge a line or a field). Filled by the first line that needs it: its 163
#: entries cost a start as much as a class, and most servers write no combined log.
_ESCAPES: dict[int, str] = {}
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _escaped(raw: bytes | None) -> str:
    if not raw:
        return "-"
    if not _ESCAPES:  # the same entries from any thread that gets here first
        escaped = (*range(0x20), ord('"'), ord("\\"), *range(0x7F, 0x100))
        _ESCAPES.update({code: f"\\x{code:02X}" for code in escaped})
    return raw.decode("latin-1").translate(_ESCAPES)


def combined_line(params: Mapping[bytes, bytes], status: int, body_bytes: int, now: float) -> str:
    """Apache's and nginx's "combined" format, with the local time (``now``) as they write
    it: ``127.0.0.1 - ann [21/Nov/2026:08:30:00 +0100] "GET /x?y=1 HTTP/1.1" 200 12
    "https://example.com/" "curl/8.5.0"``. The client's fields are escaped as nginx does."""
    local = time.localtime(now)
    offset = local.tm_gmtoff // 60
    zone = f"{'-' if offset < 0 else '+'}{abs(offset) // 60:02d}{abs(offset) % 60:02d}"
    stamp = (
        f"{local.tm_mday:02d}/{_MONTHS[local.tm_mon - 1]}/{local.tm_year}:"
        f"{local.tm_hour:02d}:{local.tm_min:02d}:{local.tm_sec:02d} {zone}"
    )
    request = b" ".join(
        (
            params.get(b"REQUEST_METHOD", b"-"),
            request_uri(params),
            params.get(b"SERVER_PROTOCOL", b"HTTP/1.0"),
        )
    )
    return (
        f"{_escaped(params.get(b'REMOTE_ADDR'))} - {_escaped(params.get(b'REMOTE_USER'))} "
        f'[{stamp}] "{_escaped(request)}" {status} {body_bytes} '
        f'"{_escaped(params.get(b"HTTP_REFERER"))}" "{_escaped(params.get(b"HTTP_USER_AGENT"))}"'
    )


def _text(raw: bytes | None) -> str | None:
    """A param's bytes as JSON text: UTF-8, any other byte as a visible ``\\xHH``."""
    return None if raw is None else raw.decode("utf-8", "backslashreplace")


def json_line(
    params: Mapping[bytes, bytes],
    request_id: int,
    status: int,
    body_bytes: int,
    duration: float,
    now: float,
) -> str:
    """One JSON object (the keys in docs/operations.rst, "Access log"); ASCII only, so a
    client's bytes cannot break the line."""
    import json  # here: only this format needs it, and a start need not load it before binding

    path, _, query = request_uri(params).partition(b"?")
    return json.dumps(
        {
            "time": iso_time(now),
            "request_id": request_id,
            "pid": os.getpid(),
            "remote_addr": _text(params.get(b"REMOTE_ADDR")),
            "method": _text(params.get(b"REQUEST_METHOD")),
            "path": _text(path),
            "query": _text(query),
            "protocol": _text(params.get(b"SERVER_PROTOCOL")),
            "status": status,
            "bytes": body_bytes,
            "duration": round(duration, 6),
            "referer": _text(params.get(b"HTTP_REFERER")),
            "user_agent": _text(params.get(b"HTTP_USER_AGENT")),
        },
        separators=(",", ":"),
    )


class RateLimitedLog:
    """One log line per ``interval`` seconds for a problem a peer can repeat as fast as it
    likes (a refused address, a failed accept): a flood must not become a flood of lines.

    The first occurrence is logged at once. Those after it are counted, with the first few
    distinct details (addresses, error texts), and logged as one line with the count once
    ``interval`` has passed: by the next occurrence, or by :meth:`flush`, which the server's
    loop calls once a second so that the end of a burst is reported too. For the loop's
    thread only (no lock): the loop role passes between threads, but one at a time.
    """

    #: distinct details kept for one line; more are counted, not named
    MAX_DETAILS = 8

    def __init__(
        self, logger: logging.Logger, message: str, *, level: int, interval: float = 5.0
    ) -> None:
        #: %-format with one ``%s``: the details, comma-separated
        self.message = message
        self.logger = logger
        self.level = level
        self.interval = interval
        self.count = 0
        self._details: list[str] = []
        #: a distinct detail was left out of ``_details`` (it was full)
        self._more = False
        self._since = 0.0
        self._next_line = 0.0

    def note(self, detail: str, now: float) -> None:
        """One more occurrence (``now``: time.monotonic())."""
        self.count += 1
        if detail not in self._details:
            if len(self._details) < self.MAX_DETAILS:
                self._details.append(detail)
            else:
                self._more = True
        if now >= self._next_line:
            self._emit(now)

    def flush(self, now: float) -> None:
        """Log what was counted since the last line, if its interval is over."""
        if self.count and now >= self._next_line:
            self._emit(now)

    def _emit(self, now: float) -> None:
        details = ", ".join(self._details) + (", ..." if self._more else "")
        if self.count > 1:
            self.logger.log(
                self.level,
                self.message + "; %d times in the last %.0fs",
                details,
                self.count,
                max(1.0, now - self._since),
            )
        else:
            self.logger.log(self.level, self.message, details)
        self.count = 0
        self._details = []
        self._more = False
        self._since = now
        self._next_line = now + self.interval
