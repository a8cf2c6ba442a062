"""What ``fcgikit check`` can tell from a ``.fcgi`` file before it runs it.

A spawning web server (mod_fcgid, lighttpd ``bin-path``) executes the file itself, as its own
user, with its own PATH. So the file must be reachable and executable for that user, start
with a shebang that names an interpreter the server can find, and have Unix line endings
(the kernel would read ``python\\r`` as the interpreter). Each of these fails with only
"premature end of script headers" in the server's log; :func:`check_file` names the cause.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

from fcgikit.check.result import Problem
from fcgikit.check.spawn import MINIMAL_PATH

if TYPE_CHECKING:
    from collections.abc import Sequence


def _shebang(data: bytes) -> list[str] | None:
    if not data.startswith(b"#!"):
        return None
    line = data.split(b"\n", 1)[0][2:].rstrip(b"\r").decode("utf-8", "replace")
    return line.split()


def _can_execute(path: str, uid: int, gids: Sequence[int]) -> bool:
    try:
        st = os.stat(path)
    except OSError:
        return False
    if uid == 0:
        return bool(st.st_mode & 0o111)
    if st.st_uid == uid:
        return bool(st.st_mode & 0o100)
    if st.st_gid in gids:
        return bool(st.st_mode & 0o010)
    return bool(st.st_mode & 0o001)


def blocking_directory(path: str, uid: int, gids: Sequence[int]) -> str | None:
    """The first directory above ``path`` the user may not search (enter), if there is one."""
    if uid == 0:
        return None
    directory = os.path.dirname(os.path.abspath(path))
    chain = []
    while True:
        chain.append(directory)
        parent = os.path.dirname(directory)
        if parent == directory:
            break
        directory = parent
    for directory in reversed(chain):
        try:
            st = os.stat(directory)
        except OSError:
            return None
        if st.st_uid == uid:
            bit = 0o100
        elif st.st_gid in gids:
            bit = 0o010
        else:
            bit = 0o001
        if not st.st_mode & bit:
            return f"{directory} (mode {st.st_mode & 0o777:04o}, owner uid {st.st_uid})"
    return None


def check_file(path: str, uid: int, gids: Sequence[int]) -> tuple[list[str] | None, list[Problem]]:
    """Static checks of a ``.fcgi`` file; returns the interpreter command and the problems."""
    problems: list[Problem] = []
    blocked = blocking_directory(path, uid, gids)
    if blocked is not None:
        problems.append(
            Problem(
                f"the web server's user cannot reach {path}: it may not enter {blocked}",
                "Fix: keep the app in a directory that user can read (e.g. /var/www/...), or "
                "make the directories on the way searchable (chmod o+x).",
            )
        )
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        return None, [Problem(f"cannot read {path}: {exc.strerror}")]
    if b"\r\n" in data:
        problems.append(
            Problem(
                f"{path} has Windows (CRLF) line endings",
                "The kernel reads the shebang's interpreter with the \\r attached, fails with "
                "'No such file or directory', and the web server only logs 'End of script "
                "output before headers' (or 'premature end of script headers').",
                f"Fix: sed -i 's/\\r$//' {path}   (or dos2unix {path})",
            )
        )
    if not _can_execute(path, uid, gids):
        problems.append(
            Problem(
                f"{path} is not executable for the user the web server runs it as",
                "mod_fcgid and lighttpd bin-path execute the file itself.",
                f"Fix: chmod +x {path}",
            )
        )
    command, shebang_problems = _check_shebang(path, _shebang(data), uid, gids)
    return command, problems + shebang_problems


def _check_shebang(
    path: str, command: list[str] | None, uid: int, gids: Sequence[int]
) -> tuple[list[str] | None, list[Problem]]:
    """The shebang's command if the web server can run it, and the problems if it cannot."""
    if command is None:
        return None, [
            Problem(
                f"{path} has no shebang line",
                "A web server executes the file, so the first line must name the interpreter "
                "the app's packages are installed for.",
                f"Fix: make the first line #!{sys.executable}",
            )
        ]
    if not command:
        return None, [Problem(f"{path}: the shebang line names no interpreter")]
    interpreter = command[0]
    if os.path.basename(interpreter) == "env" and len(command) > 1:
        import shutil

        found = shutil.which(command[1], path=MINIMAL_PATH)
        if found is None:
            return None, [
                Problem(
                    f"the shebang #!{' '.join(command)} finds no {command[1]} on the web "
                    f"server's PATH ({MINIMAL_PATH})",
                    f"Your shell finds {shutil.which(command[1]) or 'none either'}. Name the "
                    f"interpreter by its full path: #!{sys.executable}",
                )
            ]
    elif not os.path.exists(interpreter):
        return None, [
            Problem(
                f"the shebang names {interpreter}, which does not exist",
                f"Fix: make the first line #!{sys.executable} (this fcgikit's interpreter) or "
                "the interpreter the app is installed for",
            )
        ]
    elif not _can_execute(interpreter, uid, gids):
        return command, [
            Problem(f"the shebang's interpreter {interpreter} is not executable for this user")
        ]
    return command, []
