"""Logging set-up shared by the single-process server, the prefork master and its workers."""

from __future__ import annotations

import logging
import sys

log = logging.getLogger("fcgikit.server")


def configure_logging(level: int, log_file: str | None) -> None:
    root = logging.getLogger()
    if root.handlers:
        return
    handler: logging.Handler = (
        logging.FileHandler(log_file) if log_file else logging.StreamHandler(sys.stderr)
    )
    # %(process)d, not the pid at configuration time: the workers log through this too.
    handler.setFormatter(logging.Formatter("fcgikit[%(process)d] %(levelname)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(level)


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
    handler = logging.StreamHandler(sys.stderr) if target == "-" else logging.FileHandler(target)
    handler.setFormatter(logging.Formatter("%(message)s"))
    access_log.addHandler(handler)
    access_log.setLevel(logging.INFO)
    access_log.propagate = False


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
