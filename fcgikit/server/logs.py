"""Logging set-up shared by the single-process server, the prefork master and its workers.

fcgikit logs through its own loggers (``fcgikit.*``) and configures only them: one handler
on ``fcgikit``, its level, and no propagation. The root logger and the app's loggers are the
app's, as under flup: an app that sets nothing up keeps Python's defaults (warnings and
worse, bare, on stderr), one that sends its lines somewhere gets them there once and not
also in fcgikit's log with fcgikit's prefix, and one that configures the root logger does not
get fcgikit's lines a second time through it.
"""

from __future__ import annotations

import logging
import sys

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
