"""Logging set-up shared by the single-process server, the prefork master and its workers."""

from __future__ import annotations

import logging
import sys


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
