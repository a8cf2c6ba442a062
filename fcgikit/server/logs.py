"""Logging set-up shared by the single-process server, the prefork master and its workers."""

from __future__ import annotations

import logging
import sys
import time


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


class RateLimitedLog:
    """A warning that can come in floods (a peer sending request after request that is
    refused): the first line at once, then at most one line per ``interval`` seconds, which
    counts the lines left out (``summary``, a format for that count). A line left out is not
    formatted, and its arguments are not kept. :meth:`flush`, called now and then, logs the
    count of a flood that is over. For one thread (the server's loop)."""

    def __init__(self, logger: logging.Logger, interval: float, summary: str) -> None:
        self._logger = logger
        self._interval = interval
        self._summary = summary
        self._quiet_until = 0.0
        self._left_out = 0

    def warning(self, message: str, *args: object) -> None:
        if time.monotonic() < self._quiet_until:
            self._left_out += 1
            return
        self.flush()
        self._logger.warning(message, *args)
        self._quiet_until = time.monotonic() + self._interval

    def flush(self) -> None:
        if self._left_out and time.monotonic() >= self._quiet_until:
            self._logger.warning(f"{self._summary} in the last %gs", self._left_out, self._interval)
            self._left_out = 0
            self._quiet_until = time.monotonic() + self._interval


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
