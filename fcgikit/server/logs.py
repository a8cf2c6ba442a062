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
