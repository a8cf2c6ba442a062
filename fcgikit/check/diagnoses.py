"""Why the app fails under the web server: its exception, read and explained.

The exception comes from the child's report or from the tracebacks in the app's stderr
(:func:`parse_tracebacks` turns those into the same shape). :func:`diagnose` explains each of
the guide's causes of "premature end of headers" in the user's terms: a module another
interpreter has (or that is only on the user's own sys.path), an environment variable only the
user's shell sets, a relative path that depends on the working directory, a file the web
server's user may not open.
"""

from __future__ import annotations

import os
import re
from typing import TYPE_CHECKING, Any

import fcgikit
from fcgikit.check.child import is_library_file
from fcgikit.check.interpreters import find_module_elsewhere
from fcgikit.check.result import Problem

if TYPE_CHECKING:
    from collections.abc import Iterable

_FRAME = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+), in (?P<name>.+)$')
_EXC_LINE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<message>.*))?$")


def parse_tracebacks(text: str) -> list[dict[str, Any]]:
    """The exceptions in a log's tracebacks, in the shape the child reports them."""
    found: list[dict[str, Any]] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        if not lines[index].startswith("Traceback (most recent call last):"):
            index += 1
            continue
        frames: list[list[Any]] = []
        index += 1
        while index < len(lines) and (lines[index].startswith(" ") or not lines[index]):
            match = _FRAME.match(lines[index])
            if match:
                frames.append([match["file"], int(match["line"]), match["name"], ""])
            index += 1
        if index >= len(lines):
            break
        match = _EXC_LINE.match(lines[index])
        if match:
            info: dict[str, Any] = {
                "type": match["type"].rpartition(".")[2],
                "message": match["message"] or "",
                "frames": frames,
            }
            message = info["message"]
            module = re.search(r"No module named '([^']+)'", message)
            if module:
                info["module"] = module.group(1)
            filename = re.search(r"\[Errno \d+\] [^:]+: '(.+)'$", message)
            if filename:
                info["filename"] = filename.group(1)
            if info["type"] == "KeyError" and re.fullmatch(r"'[^']*'", message):
                info["key"] = message[1:-1]
            found.append(info)
        index += 1
    return found


def _from_environ(info: dict[str, Any]) -> bool:
    return any(
        (frame[0] == "<frozen os>" or frame[0].replace("\\", "/").endswith("/os.py"))
        and frame[2] == "__getitem__"
        for frame in info.get("frames", [])
    )


def _where(info: dict[str, Any]) -> str:
    ours = os.path.dirname(os.path.abspath(fcgikit.__file__)) + os.sep  # fcgikit's own frames
    user = [
        f
        for f in info.get("frames", [])
        if not is_library_file(f[0]) and not str(f[0]).startswith(ours)
    ]
    if not user:
        return ""
    frame = user[-1]
    return f" ({frame[0]}, line {frame[1]})"


def _local_module(module: str, directories: Iterable[str]) -> str | None:
    top = module.partition(".")[0]
    for directory in directories:
        for candidate in (f"{top}.py", os.path.join(top, "__init__.py")):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    return None


class RunContext:
    """What the diagnoses need to know about the run."""

    def __init__(
        self,
        target: str,
        user: str,
        shebang: list[str] | None,
        interpreter: dict[str, Any] | None,
        app_dir: str,
        invoked_from: str,
    ) -> None:
        self.target = target
        self.user = user
        self.shebang = shebang
        self.interpreter = interpreter or {}
        self.app_dir = app_dir
        self.invoked_from = invoked_from


def diagnose(info: dict[str, Any], context: RunContext) -> list[Problem]:
    """Why the exception ``info`` (as the child reports it) happens under the web server."""
    kind = info.get("type", "")
    where = _where(info)
    if "module" in info and kind in ("ModuleNotFoundError", "ImportError"):
        return [_diagnose_import(info["module"], context, where)]
    if kind == "KeyError" and "key" in info and _from_environ(info):
        return [_diagnose_environ(info["key"], where)]
    if kind == "FileNotFoundError" and "filename" in info:
        return [_diagnose_missing_file(info["filename"], context, where)]
    if kind == "PermissionError" and "filename" in info:
        return [
            Problem(
                f"{context.user} may not access {info['filename']}{where}",
                "The web server runs the app as that user. Fix the file's owner or mode, or "
                "keep the app's writable files in a directory that user owns.",
            )
        ]
    return [Problem(f"the app raised {kind}: {info.get('message', '')}{where}")]


def _diagnose_import(module: str, context: RunContext, where: str) -> Problem:
    interpreter = context.interpreter
    lines = []
    if context.shebang:
        lines.append(f"shebang:        #!{' '.join(context.shebang)}")
    if interpreter:
        lines.append(
            f"sys.executable: {interpreter.get('executable')} (Python {interpreter.get('version')})"
        )
        lines.append("sys.path:")
        lines += [f"    {entry!r}" for entry in interpreter.get("path", [])]
    elsewhere = find_module_elsewhere(module, interpreter.get("prefix"), context.app_dir)
    for python, origin in elsewhere:
        lines.append(f"'{module.partition('.')[0]}' is installed for {python}: {origin}")
    local = _local_module(module, [context.invoked_from, os.path.dirname(context.app_dir)])
    if local:
        lines.append(
            f"It is at {local}, which is not on sys.path when the web server starts the app "
            "(it starts it from / with no PYTHONPATH)."
        )
        lines.append(
            f"Fix: in the .fcgi, before the import: sys.path.insert(0, {os.path.dirname(local)!r})"
        )
    elif elsewhere:
        python = elsewhere[0][0]
        lines.append(
            f"Fix: use that interpreter - make the shebang #!{python} - or install the app's "
            f"requirements for {interpreter.get('executable', 'this interpreter')}."
        )
    else:
        lines.append(
            "No interpreter on this machine has it. Install it for "
            f"{interpreter.get('executable', 'the shebang interpreter')}."
        )
    title = f"the app's interpreter cannot import {module!r}{where}"
    if elsewhere and not local:
        title += ": it is installed for a different Python"
    return Problem(title, *lines)


def _diagnose_environ(key: str, where: str) -> Problem:
    in_shell = key in os.environ
    return Problem(
        f"the app reads os.environ[{key!r}]{where}, which the web server does not set",
        (
            "Your shell sets it, which is why the app works when you run it yourself."
            if in_shell
            else "Nothing sets it here either."
        ),
        "Set it where the web server starts the app:",
        f"  Apache mod_fcgid:  FcgidInitialEnv {key} value",
        f"  Apache CGI:        SetEnv {key} value   (PassEnv {key} to pass Apache's own)",
        f'  lighttpd bin-path: "bin-environment" => ( "{key}" => "value" )',
        f"  systemd/supervisor (nginx, Caddy, h2o backends): Environment={key}=value / "
        f"environment={key}=value",
        f"or give it a default in the code: os.environ.get({key!r}, ...)",
    )


def _diagnose_missing_file(filename: str, context: RunContext, where: str) -> Problem:
    if os.path.isabs(filename):
        return Problem(
            f"the app opens {filename}{where}, which does not exist",
            "Check the path, or create the file (readable by the web server's user).",
        )
    candidates = [
        os.path.join(directory, filename)
        for directory in dict.fromkeys([context.app_dir, context.invoked_from])
    ]
    existing = [path for path in candidates if os.path.exists(path)]
    return Problem(
        f"the app opens the relative path {filename!r}{where}; under the web server it "
        "resolves against the working directory, which is / (or wherever the server starts)",
        *(f"It exists at {path}." for path in existing),
        "Fix: build the path from the module's location, not the cwd:",
        f"    os.path.join(os.path.dirname(os.path.abspath(__file__)), {filename!r})",
    )
