"""The prefork master's pid file (``--pidfile``), for process managers and scripts that
signal the master by its pid.

It is written whole or not at all (a temporary file renamed over it), so a reader never sees
half a pid; and it is removed at the stop only while it still names this process, so a master
that stops late never removes the file of the one that replaced it.
"""

from __future__ import annotations

import contextlib
import os

from fcgikit.errors import ConfigError


def write_pidfile(path: str | None) -> None:
    """Write this process's pid to ``path`` (none when it is None)."""
    if path is None:
        return
    temp = f"{path}.{os.getpid()}.tmp"
    try:
        with open(temp, "w") as file:
            file.write(f"{os.getpid()}\n")
        os.replace(temp, path)
    except OSError as exc:
        raise ConfigError(f"cannot write the pid file {path}: {exc.strerror}") from exc


def remove_pidfile(path: str | None) -> None:
    """Remove the pid file at ``path`` if it still names this process."""
    if path is None:
        return
    with contextlib.suppress(OSError, ValueError), open(path) as file:
        if int(file.read().strip()) == os.getpid():
            os.unlink(path)
