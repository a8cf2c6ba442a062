"""``fcgikit check`` and ``fcgikit request``: see a FastCGI app work, or see why it does not.

The guide's advice for "premature end of headers" is to become the web server's user and run
the ``.fcgi`` by hand. ``fcgikit check`` does that properly::

    fcgikit check /var/www/yourapplication/yourapplication.fcgi --user www-data --path /news/
    fcgikit check yourapplication:app

It starts the app the way a spawning web server (mod_fcgid, lighttpd ``bin-path``) does: the
``.fcgi`` file's own interpreter from its shebang, a listening socket on fd 0, the minimal
environment web servers pass (``PATH=/usr/bin:/bin``, no HOME, no PYTHONPATH), cwd ``/``,
optionally as another user. Then it sends one real FastCGI request and prints the status,
the headers and the start of the body - or the traceback, with a diagnosis for each of the
guide's causes: a relative path that depends on the cwd, an environment variable the web
server does not set, a different interpreter than the one the app was installed for (and
where the missing module *is* installed). It also catches an ``app.run()`` at import time
(an audit hook sees the development server bind its TCP port and stops it there), and a
``.fcgi`` that is not executable or has CRLF line endings.

``fcgikit request ADDR PATH`` is a ``cgi-fcgi``-like client for smoke-testing a running
backend.

This module doubles as the child's bootstrap: the child is ``<interpreter> -c <this file's
source> --child CONFIG``, run by the ``.fcgi`` file's interpreter, which may not even have
fcgikit installed. So everything at module level imports only the standard library, and the
child code runs on any Python 3.8+.
"""

from __future__ import annotations

import json
import os
import re
import sys
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse
    from collections.abc import Iterable, Sequence
    from typing import Any, TextIO

#: What a web server passes to the app it spawns (mod_fcgid: Apache's own env, usually just
#: PATH; lighttpd and h2o: their env; a CGI gets PATH plus the request variables).
MINIMAL_PATH = "/usr/bin:/bin"
#: The child's exit status when it stopped a development server from starting.
EXIT_APP_RUN = 97
#: How much of the body ``check`` prints.
BODY_PREVIEW = 800
_CHILD_FLAG = "--child"


# === the child =================================================================================
# Runs in the app's interpreter: standard library only, Python 3.8 syntax.


def _is_library_file(filename: str) -> bool:
    if filename.startswith("<") or not filename:
        return True
    parts = filename.replace("\\", "/")
    if "/site-packages/" in parts or "/dist-packages/" in parts:
        return True
    import sysconfig

    for key in ("stdlib", "platstdlib"):
        root = sysconfig.get_paths().get(key)
        if root and filename.startswith(root.rstrip("/") + "/"):
            return True
    return False


def _frames(tb_or_stack: Any) -> list[list[Any]]:
    return [[f.filename, f.lineno, f.name, f.line or ""] for f in tb_or_stack]


class _Reporter:
    def __init__(self, fd: int) -> None:
        try:
            self._out: TextIO | None = os.fdopen(fd, "w", buffering=1)
        except OSError:
            self._out = None

    def emit(self, event: str, **data: Any) -> None:
        if self._out is None:
            return
        data["event"] = event
        try:
            self._out.write(json.dumps(data, default=str) + "\n")
            self._out.flush()
        except (OSError, ValueError):
            self._out = None


def _audit_hook(reporter: _Reporter) -> Any:
    import socket

    def hook(event: str, args: tuple[Any, ...]) -> None:
        if event != "socket.bind":
            return
        sock = args[0]
        if getattr(sock, "family", None) not in (socket.AF_INET, socket.AF_INET6):
            return
        if getattr(sock, "type", None) != socket.SOCK_STREAM:
            return
        stack = traceback.extract_stack()[:-1]
        # Judge by who called bind(), not by what is on the stack: importing `module:app`
        # goes through fcgikit/server/apploader.py, and app.run() then binds from werkzeug.
        caller = stack[-1].filename.replace("\\", "/") if stack else ""
        if caller.endswith("/fcgikit/server/listeners.py") or "/flup/" in caller:
            # a FastCGI server binding its own bindAddress: not a development server
            reporter.emit("bind", address=repr(args[1]))
            return
        user = [frame for frame in stack if not _is_library_file(frame.filename)]
        where = _frames(user[-1:])
        reporter.emit("app_run", address=repr(args[1]), where=where, stack=_frames(stack))
        location = f"{where[0][0]}:{where[0][1]}" if where else "the app"
        sys.stderr.write(
            f"fcgikit check: {location} starts a development server on {args[1]!r} "
            "(app.run() or similar) while the web server starts the app; stopped here\n"
        )
        sys.stderr.flush()
        os._exit(EXIT_APP_RUN)

    return hook


def _describe_exception(exc: BaseException) -> dict[str, Any]:
    cause = exc.__cause__
    if isinstance(cause, ImportError) and not isinstance(exc, ImportError):
        return _describe_exception(cause)  # e.g. load_app's ConfigError for `module:app`
    tb = traceback.extract_tb(exc.__traceback__)
    info: dict[str, Any] = {
        "type": type(exc).__name__,
        "message": str(exc),
        "frames": _frames(tb),
    }
    if isinstance(exc, ImportError) and exc.name:
        info["module"] = exc.name
    if isinstance(exc, OSError) and exc.filename is not None:
        info["filename"] = str(exc.filename)
    if isinstance(exc, KeyError) and exc.args and isinstance(exc.args[0], str):
        info["key"] = exc.args[0]
    return info


def _child_main(argv: list[str]) -> int:
    config = json.loads(argv[0])
    reporter = _Reporter(int(config["report_fd"]))
    # ``-c`` put '' (the cwd, /) first on sys.path; a script gets its own directory there.
    if sys.path and sys.path[0] == "":
        del sys.path[0]
    sys.path.insert(0, config["path0"])
    reporter.emit(
        "interpreter",
        executable=sys.executable,
        version=sys.version.split()[0],
        path=list(sys.path),
        prefix=sys.prefix,
        uid=os.getuid(),
        cwd=os.getcwd(),
    )
    sys.addaudithook(_audit_hook(reporter))
    try:
        if config["mode"] == "fcgi":
            import runpy

            sys.argv = [config["target"]]
            runpy.run_path(config["target"], run_name="__main__")
        else:
            _serve_app(config["target"], reporter)
    except SystemExit as exc:
        reporter.emit("exited", code=str(exc.code))
        raise
    except BaseException as exc:
        reporter.emit("exception", **_describe_exception(exc))
        # Print the traceback without this bootstrap's own frames.
        shown = [
            frame
            for frame in traceback.extract_tb(exc.__traceback__)
            if frame.filename not in ("<string>", "<frozen runpy>")
            and not frame.filename.endswith("runpy.py")
        ]
        sys.stderr.write("Traceback (most recent call last):\n")
        sys.stderr.write("".join(traceback.format_list(shown)))
        sys.stderr.write("".join(traceback.format_exception_only(type(exc), exc)))
        sys.stderr.flush()
        return 1
    reporter.emit("exited", code="0")
    return 0


def _serve_app(spec: str, reporter: _Reporter) -> None:
    """``module:app``: what ``fcgikit serve`` does with the socket a spawner gives it on fd 0."""
    import logging

    from fcgikit.server import Server, ServerSettings, inherited_listener
    from fcgikit.server.apploader import load_app
    from fcgikit.server.logs import configure_logging

    configure_logging(logging.INFO, None)
    app = load_app(spec)
    listener = inherited_listener(0)
    if listener is None:
        raise RuntimeError("fd 0 is not a listening socket")
    reporter.emit("serving")
    Server(app, ServerSettings(threads=1), [listener]).serve()


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == _CHILD_FLAG:
    sys.exit(_child_main(sys.argv[2:]))


# === the parent =================================================================================
# From here on, code runs in fcgikit's interpreter only.


class Problem:
    """One thing that is wrong, said the way the user can fix it."""

    def __init__(self, title: str, *details: str) -> None:
        self.title = title
        self.details = list(details)

    def render(self) -> str:
        lines = [f"  * {self.title}"]
        lines += [f"      {line}" for detail in self.details for line in detail.splitlines()]
        return "\n".join(lines)

    def __repr__(self) -> str:
        return f"Problem({self.title!r})"


class CheckResult:
    """What ``check`` found: the response if there was one, and the problems."""

    def __init__(self) -> None:
        self.status: int | None = None
        self.problems: list[Problem] = []
        #: What looks wrong to a visitor but does not fail the check.
        self.warnings: list[Problem] = []
        self.stderr = ""
        self.events: list[dict[str, Any]] = []

    @property
    def ok(self) -> bool:
        """The app answered the request with neither a problem nor a 4xx/5xx status."""
        return not self.problems and self.status is not None and self.status < 400


# --- the .fcgi file itself -------------------------------------------------------------------


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


def _blocking_directory(path: str, uid: int, gids: Sequence[int]) -> str | None:
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
    blocked = _blocking_directory(path, uid, gids)
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
    command = _shebang(data)
    if command is None:
        problems.append(
            Problem(
                f"{path} has no shebang line",
                "A web server executes the file, so the first line must name the interpreter "
                "the app's packages are installed for.",
                f"Fix: make the first line #!{sys.executable}",
            )
        )
        return None, problems
    if not command:
        problems.append(Problem(f"{path}: the shebang line names no interpreter"))
        return None, problems
    interpreter = command[0]
    if os.path.basename(interpreter) == "env" and len(command) > 1:
        import shutil

        found = shutil.which(command[1], path=MINIMAL_PATH)
        if found is None:
            problems.append(
                Problem(
                    f"the shebang #!{' '.join(command)} finds no {command[1]} on the web "
                    f"server's PATH ({MINIMAL_PATH})",
                    f"Your shell finds {shutil.which(command[1]) or 'none either'}. Name the "
                    f"interpreter by its full path: #!{sys.executable}",
                )
            )
            return None, problems
    elif not os.path.exists(interpreter):
        problems.append(
            Problem(
                f"the shebang names {interpreter}, which does not exist",
                f"Fix: make the first line #!{sys.executable} (this fcgikit's interpreter) or "
                "the interpreter the app is installed for",
            )
        )
        return None, problems
    elif not _can_execute(interpreter, uid, gids):
        problems.append(
            Problem(f"the shebang's interpreter {interpreter} is not executable for this user")
        )
    return command, problems


# --- reading a traceback --------------------------------------------------------------------

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


# --- diagnoses ------------------------------------------------------------------------------


def _from_environ(info: dict[str, Any]) -> bool:
    return any(
        (frame[0] == "<frozen os>" or frame[0].replace("\\", "/").endswith("/os.py"))
        and frame[2] == "__getitem__"
        for frame in info.get("frames", [])
    )


def _where(info: dict[str, Any]) -> str:
    ours = os.path.dirname(os.path.abspath(__file__)) + os.sep
    user = [
        f
        for f in info.get("frames", [])
        if not _is_library_file(f[0]) and not str(f[0]).startswith(ours)
    ]
    if not user:
        return ""
    frame = user[-1]
    return f" ({frame[0]}, line {frame[1]})"


def _candidate_interpreters(near: str | None) -> list[str]:
    import glob

    patterns = ["/usr/bin/python3*", "/usr/local/bin/python3*"]
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    patterns.append(os.path.join(pyenv, "versions", "*", "bin", "python3"))
    found = [sys.executable]
    if os.environ.get("VIRTUAL_ENV"):
        found.append(os.path.join(os.environ["VIRTUAL_ENV"], "bin", "python"))
    for pattern in patterns:
        found += sorted(glob.glob(pattern))
    directory = near
    for _ in range(4):  # venvs next to the app or up to three levels above it
        if not directory:
            break
        for cfg in sorted(glob.glob(os.path.join(directory, "*", "pyvenv.cfg"))):
            found.append(os.path.join(os.path.dirname(cfg), "bin", "python"))
        parent = os.path.dirname(directory)
        directory = parent if parent != directory else None
    usable = []
    for path in dict.fromkeys(found):
        name = os.path.basename(path)
        if not re.fullmatch(r"python(3(\.\d+)?)?", name):
            continue
        if os.path.isfile(path) and os.access(path, os.X_OK):
            usable.append(path)
    return usable


_FIND_SPEC = (
    "import importlib.util, json, sys\n"
    "try:\n    spec = importlib.util.find_spec(sys.argv[1])\n"
    "except Exception:\n    spec = None\n"
    "print(json.dumps([sys.prefix, spec.origin if spec else None]))\n"
)


def find_module_elsewhere(
    module: str, exclude_prefix: str | None, near: str | None
) -> list[tuple[str, str]]:
    """Interpreters on this machine that can import ``module``: ``(python, where)`` pairs."""
    import subprocess
    from concurrent.futures import ThreadPoolExecutor

    top = module.partition(".")[0]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}

    def probe(python: str) -> tuple[str, str, str | None] | None:
        try:
            done = subprocess.run(
                [python, "-c", _FIND_SPEC, top],
                capture_output=True,
                text=True,
                timeout=20,
                env=env,
                cwd="/",
                stdin=subprocess.DEVNULL,
            )
            prefix, origin = json.loads(done.stdout)
        except (OSError, ValueError, subprocess.SubprocessError):
            return None
        return python, str(prefix), origin

    with ThreadPoolExecutor(max_workers=8) as pool:
        results = [r for r in pool.map(probe, _candidate_interpreters(near)) if r is not None]
    found: dict[str, tuple[str, str]] = {}
    for python, prefix, origin in results:
        if origin is None or prefix == exclude_prefix or prefix in found:
            continue
        found[prefix] = (python, origin)
    return list(found.values())


def _local_module(module: str, directories: Iterable[str]) -> str | None:
    top = module.partition(".")[0]
    for directory in directories:
        for candidate in (f"{top}.py", os.path.join(top, "__init__.py")):
            path = os.path.join(directory, candidate)
            if os.path.isfile(path):
                return path
    return None


class _Context:
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


def diagnose(info: dict[str, Any], context: _Context) -> list[Problem]:
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


def _diagnose_import(module: str, context: _Context, where: str) -> Problem:
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


def _diagnose_missing_file(filename: str, context: _Context, where: str) -> Problem:
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


# --- running it ------------------------------------------------------------------------------


def _user_ids(user: str | None) -> tuple[int, int, list[int], str]:
    import pwd

    if user is None:
        uid = os.getuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return uid, os.getgid(), list(os.getgroups()), name
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no such user: {user}") from None
    if os.getuid() != 0 and account.pw_uid != os.getuid():
        raise ValueError(f"--user {user} needs root (check switches to that user to run the app)")
    gids = os.getgrouplist(account.pw_name, account.pw_gid)
    return account.pw_uid, account.pw_gid, gids, account.pw_name


def _source() -> str:
    with open(__file__, encoding="utf-8") as f:
        return f.read()


class _Run:
    """One child process with a listening socket on fd 0, and one request sent to it."""

    def __init__(
        self,
        command: list[str],
        config: dict[str, str],
        *,
        env: dict[str, str],
        uid: int,
        gid: int,
        gids: list[int],
        workdir: str,
    ) -> None:
        import socket
        import subprocess

        self.path = os.path.join(workdir, "check.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(8)
        report_r, report_w = os.pipe()
        argv = [
            *command,
            "-c",
            _source(),
            _CHILD_FLAG,
            json.dumps({**config, "report_fd": report_w}),
        ]
        self.stdout_path = os.path.join(workdir, "stdout")
        self.stderr_path = os.path.join(workdir, "stderr")
        switch = uid != os.getuid()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            try:
                self.process = subprocess.Popen(
                    argv,
                    stdin=listener.fileno(),
                    stdout=out,
                    stderr=err,
                    env=env,
                    cwd="/",
                    pass_fds=(report_w,),
                    start_new_session=True,
                    user=uid if switch else None,
                    group=gid if switch else None,
                    extra_groups=gids if switch else None,
                )
            finally:
                listener.close()
                os.close(report_w)
        self.events: list[dict[str, Any]] = []
        import threading

        #: set when there is no point waiting longer: an answer, an exit, a bind of its own
        self.done = threading.Event()
        self._reader = threading.Thread(target=self._read_events, args=(report_r,), daemon=True)
        self._reader.start()

    def _read_events(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as report:
            for line in report:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                self.events.append(event)
                if event.get("event") == "bind":
                    self.done.set()  # it will not answer on the socket we gave it

    def request(self, send: Any, timeout: float) -> tuple[Any, BaseException | None, bool]:
        """Send the request; returns (response or None, error or None, timed out)."""
        import threading

        outcome: dict[str, Any] = {}
        done = self.done

        def do_request() -> None:
            try:
                outcome["response"] = send(f"unix:{self.path}")
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                done.set()

        def watch() -> None:
            self.process.wait()
            done.set()

        requester = threading.Thread(target=do_request, daemon=True)
        requester.start()
        threading.Thread(target=watch, daemon=True).start()
        finished = done.wait(timeout)
        if self.process.poll() is not None:
            # The child is gone, so the connection is closed: the request ends at once.
            requester.join(10)
        error = outcome.get("error")
        # the client's own timeout (the same length) may fire first
        timed_out = not finished or isinstance(error, TimeoutError)
        return outcome.get("response"), error, timed_out

    def stop(self) -> None:
        import contextlib
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reader.join(10)

    def output(self) -> tuple[str, str]:
        with open(self.stdout_path, "rb") as out, open(self.stderr_path, "rb") as err:
            return (
                out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"),
            )


def _event(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for event in events:
        if event.get("event") == name:
            return event
    return None


def check(
    target: str,
    *,
    user: str | None = None,
    path: str = "/",
    method: str = "GET",
    server: str | None = None,
    mount: str = "",
    env: Sequence[str] = (),
    timeout: float = 30.0,
    out: TextIO | None = None,
) -> CheckResult:
    """Run ``target`` (a ``.fcgi`` file or ``module:app``) as a web server would, send it one
    request, and print what happened to ``out``. See the module docstring."""
    import shutil
    import tempfile

    from fcgikit.client import FastCGIClient
    from fcgikit.quirks import SCRIPT_FILE, SERVERS, fastcgi_params

    if server is not None and server not in SERVERS:
        raise ValueError(f"unknown --server {server!r}; known: {', '.join(SERVERS)}")
    out = out if out is not None else sys.stdout
    result = CheckResult()
    uid, gid, gids, user_name = _user_ids(user)
    is_file = os.path.exists(target) or target.endswith((".fcgi", ".py", ".cgi"))
    invoked_from = os.getcwd()
    child_env = {"PATH": MINIMAL_PATH}
    for item in env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--env takes NAME=VALUE, not {item!r}")
        child_env[name] = value

    shebang: list[str] | None = None
    if is_file:
        target = os.path.abspath(target)
        app_dir = os.path.dirname(target)
        shebang, problems = check_file(target, uid, gids)
        result.problems += problems
        if shebang is None:
            _report(result, out, target)
            return result
        config = {"mode": "fcgi", "target": target, "path0": app_dir}
        command = list(shebang)
    else:
        app_dir = invoked_from
        config = {"mode": "app", "target": target, "path0": invoked_from}
        command = [sys.executable]

    print(f"fcgikit check: {target}", file=out)
    print(
        f"  as {user_name} in / with PATH={MINIMAL_PATH}"
        + "".join(f" {k}=..." for k in child_env if k != "PATH"),
        file=out,
    )
    print(f"  interpreter: {' '.join(command)}", file=out)

    request_path, _, query = path.partition("?")

    def send(address: str) -> Any:
        client = FastCGIClient(address, timeout=timeout)
        try:
            if server is not None:
                params = fastcgi_params(server, method, path, mount=mount)
                return client.request(raw_params=params)
            return client.request(method, request_path, query=query)
        finally:
            client.close()

    workdir = tempfile.mkdtemp(prefix="fcgikit-check-")
    try:
        try:
            run = _Run(command, config, env=child_env, uid=uid, gid=gid, gids=gids, workdir=workdir)
        except OSError as exc:
            blocked = _blocking_directory(command[0], uid, gids)
            result.problems.append(
                Problem(
                    f"cannot start {command[0]} as {user_name}: {exc.strerror or exc}",
                    *(
                        [
                            f"{user_name} may not enter {blocked}: an interpreter under a home "
                            "directory (pyenv, a venv in /root) is out of the web server's "
                            "reach. Use one it can run, e.g. a venv under /srv or /var/www."
                        ]
                        if blocked
                        else []
                    ),
                )
            )
            _report(result, out, target)
            return result
        try:
            response, error, timed_out = run.request(send, timeout)
        finally:
            run.stop()
        stdout, stderr = run.output()
        result.events = run.events
        result.stderr = stderr
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    interpreter = _event(result.events, "interpreter")
    context = _Context(target, user_name, shebang, interpreter, app_dir, invoked_from)
    _interpret(result, context, response, error, timed_out, timeout, run.process.returncode)
    if response is not None:
        script = os.path.basename(target) if is_file else SCRIPT_FILE
        result.warnings += _script_name_in_links(response, script, server)
    _report(result, out, target, response=response, stdout=stdout)
    return result


def _interpret(
    result: CheckResult,
    context: _Context,
    response: Any,
    error: BaseException | None,
    timed_out: bool,
    timeout: float,
    returncode: int | None,
) -> None:
    events = result.events
    app_run = _event(events, "app_run")
    if app_run is not None:
        where = app_run.get("where") or []
        location = f"{where[0][0]}, line {where[0][1]}: {where[0][3]}" if where else "the app"
        result.problems.append(
            Problem(
                f"the app starts a development server at import time ({location})",
                f"It binds {app_run.get('address')} instead of serving FastCGI on the socket "
                "the web server gives it.",
                "Fix: move app.run() under `if __name__ == '__main__':` in a separate file "
                "(the guide's 'Watch out'), or delete it.",
            )
        )
        return
    if response is None and _event(events, "interpreter") is None:
        result.problems.append(
            Problem(
                f"{' '.join(context.shebang or ['the interpreter'])} could not even start "
                "fcgikit check's bootstrap (it needs Python 3.8+; fcgikit needs 3.11+)",
                "Its output is above. Point the shebang at the Python the app is installed for.",
            )
        )
        return
    if response is not None:
        result.status = response.status
        if response.status >= 500:
            infos = parse_tracebacks(result.stderr)
            if infos:
                for info in infos[-1:]:
                    result.problems += diagnose(info, context)
            else:
                result.problems.append(
                    Problem(f"the app answered {response.status} {response.reason}")
                )
        elif response.status >= 400:
            result.problems.append(
                Problem(
                    f"the app answered {response.status} {response.reason} for the path asked",
                    "Is it a URL the app serves? Ask for another with --path. Under a web server "
                    "the app sees the params that server sends: try --server NAME (and --mount "
                    "/prefix) to check with those.",
                )
            )
        return
    exception = _event(events, "exception")
    if exception is not None:
        result.problems += diagnose(exception, context)
        return
    infos = parse_tracebacks(result.stderr)
    if infos:
        result.problems += diagnose(infos[-1], context)
        return
    bind = _event(events, "bind")
    if bind is not None:
        result.problems.append(
            Problem(
                f"the app listens on its own address {bind.get('address')} (bindAddress=...)",
                "so it ignores the socket a spawning web server (mod_fcgid, lighttpd bin-path) "
                "passes on fd 0. That is right for nginx or a standalone backend: start it "
                "yourself and try it with `fcgikit request ADDRESS /path`.",
            )
        )
        return
    if timed_out:
        result.problems.append(
            Problem(
                f"no answer within {timeout:g} s",
                "The app may be stuck while importing (a database or network call at import "
                "time?). Its output so far is below.",
            )
        )
        return
    if _event(events, "exited") is not None or returncode is not None:
        result.problems.append(
            Problem(
                f"the app exited (status {returncode}) without answering",
                "Does the .fcgi end with `WSGIServer(app).run()` under "
                "`if __name__ == '__main__':`?",
            )
        )
        return
    result.problems.append(Problem(f"the request failed: {error}"))


def _script_name_in_links(response: Any, script: str, server: str | None) -> list[Problem]:
    """A warning when the app's links or redirects name the script file (``/app.fcgi/x``).

    That is the web server's SCRIPT_NAME leaking into the app's URLs (the guide's rewrite
    recipes): the links work, but every visitor sees, bookmarks and shares them.
    """
    needle = f"{script}/".encode()
    places = [
        f"the {name} header"
        for name, value in response.headers
        if needle in value.encode("latin-1", "replace")
    ]
    if needle in response.body:
        places.append("the body")
    if not places:
        return []
    fixer = "MountFix(app)"
    if server is not None:
        import contextlib

        from fcgikit.deploy import recommended_fixer
        from fcgikit.errors import ConfigError

        # (a configuration fcgikit.quirks knows may be one `fcgikit config` does not print)
        with contextlib.suppress(ConfigError):
            fixer = str(recommended_fixer(server) or fixer)
    return [
        Problem(
            f"the app's links contain the script's file name '{script}/' (in {', '.join(places)})",
            "The web server's SCRIPT_NAME names the script file, and the app builds its URLs "
            f"from it. Wrap the app in a fixer from fcgikit.middleware, e.g. {fixer}, or use "
            "the config `fcgikit config SERVER` prints.",
        )
    ]


def _report(
    result: CheckResult,
    out: TextIO,
    target: str,
    *,
    response: Any = None,
    stdout: str = "",
) -> None:
    if response is not None:
        print(f"\nStatus: {response.status} {response.reason}", file=out)
        for name, value in response.headers:
            print(f"{name}: {value}", file=out)
        body = response.body[:BODY_PREVIEW].decode("utf-8", "replace")
        more = len(response.body) - BODY_PREVIEW
        print(f"\n{body}" + (f"\n... ({more} more bytes)" if more > 0 else ""), file=out)
    noise = re.compile(r"^fcgikit\[\d+\] INFO ")
    if any(line.strip() and not noise.match(line) for line in result.stderr.splitlines()) or (
        result.problems and result.stderr.strip()
    ):
        print("\n--- the app's stderr", file=out)
        print(result.stderr.rstrip(), file=out)
    if stdout.strip():
        print("\n--- the app's stdout (a web server logs it, or loses it)", file=out)
        print(stdout.rstrip(), file=out)
    if result.warnings:
        print("\nWarnings:", file=out)
        for warning in result.warnings:
            print(warning.render(), file=out)
    if result.problems:
        print("\nProblems:", file=out)
        for problem in result.problems:
            print(problem.render(), file=out)
        print(f"\nFAILED: {target}", file=out)
    elif result.ok:
        print(f"\nOK: {target} answers like a web server's FastCGI app should", file=out)


# --- the CLI --------------------------------------------------------------------------------


def add_check_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``fcgikit check FILE.fcgi | module:app [--user USER] [--path /url]``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="run the app as a web server would and send it one request",
        description="Start FILE.fcgi (with its shebang's interpreter) or module:app the way a "
        "spawning web server does - socket on fd 0, PATH=/usr/bin:/bin only, cwd / - send one "
        "FastCGI request, and print the response or why it failed.",
    )
    parser.add_argument("target", metavar="FILE.fcgi|module:app")
    parser.add_argument("--user", "-u", help="run the app as this user (needs root)")
    parser.add_argument("--path", default="/", help="the URL to request (default /)")
    parser.add_argument("--method", "-X", default="GET")
    parser.add_argument(
        "--server",
        help="send the params this web server configuration sends (see fcgikit.quirks), "
        "e.g. apache-htaccess, lighttpd, nginx",
    )
    parser.add_argument("--mount", default="", help="with --server: the app's URL prefix")
    parser.add_argument(
        "--env",
        "-e",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add to the app's environment, as the web server config would",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.set_defaults(run=run_check)
    return parser


def run_check(args: argparse.Namespace) -> int:
    try:
        result = check(
            args.target,
            user=args.user,
            path=args.path,
            method=args.method,
            server=args.server,
            mount=args.mount,
            env=args.env,
            timeout=args.timeout,
        )
    except (ValueError, KeyError) as exc:
        print(f"fcgikit check: {exc}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1


def add_request_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``fcgikit request ADDR PATH [-X M] [-d DATA|@file] [-H 'N: v'] [--param K=V] [-i]``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "request",
        help="send one request to a FastCGI app (like cgi-fcgi)",
        description="Send one FastCGI request to the app at ADDR (unix:PATH, /path.sock or "
        "HOST:PORT) and write the response body to stdout.",
    )
    parser.add_argument("address", metavar="ADDR")
    parser.add_argument("path", metavar="PATH", help="path and query, e.g. /search?q=x")
    parser.add_argument("-X", "--request", dest="method", help="method (default GET, POST with -d)")
    parser.add_argument(
        "-d", "--data", help="request body; @FILE reads a file, @- reads stdin (sent as is)"
    )
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="'Name: value'", dest="headers"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a FastCGI param directly (overrides the defaults, e.g. SCRIPT_NAME=/app)",
    )
    parser.add_argument(
        "-i", "--include", action="store_true", help="print the status and headers first"
    )
    parser.add_argument(
        "-f", "--fail", action="store_true", help="exit 22 when the status is 400 or more"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.set_defaults(run=run_request)
    return parser


def _read_data(data: str) -> bytes:
    if not data.startswith("@"):
        return os.fsencode(data)
    if data == "@-":
        return sys.stdin.buffer.read()
    with open(data[1:], "rb") as f:
        return f.read()


def run_request(args: argparse.Namespace) -> int:
    from fcgikit.client import FastCGIClient
    from fcgikit.errors import FcgikitError

    headers: list[tuple[str, str]] = []
    for header in args.headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            print(f"fcgikit request: -H takes 'Name: value', not {header!r}", file=sys.stderr)
            return 2
        headers.append((name.strip(), value.strip()))
    params: dict[str | bytes, str | bytes] = {}
    for param in args.param:
        name, sep, value = param.partition("=")
        if not sep or not name:
            print(f"fcgikit request: --param takes NAME=VALUE, not {param!r}", file=sys.stderr)
            return 2
        params[os.fsencode(name)] = os.fsencode(value)
    try:
        body = b"" if args.data is None else _read_data(args.data)
    except OSError as exc:
        print(f"fcgikit request: cannot read {args.data[1:]}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.data is not None and not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))  # as curl -d
    method = args.method or ("POST" if args.data is not None else "GET")
    path, _, query = args.path.partition("?")
    address = args.address
    try:
        with FastCGIClient(address, timeout=args.timeout) as client:
            response = client.request(
                method, path, query=query, headers=headers, body=body, params=params
            )
    except (OSError, FcgikitError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        print(f"fcgikit request: {address}: {reason}", file=sys.stderr)
        return 1
    if response.stderr:
        sys.stderr.buffer.write(response.stderr)
        sys.stderr.flush()
    output = sys.stdout.buffer
    if args.include:
        head = f"Status: {response.status} {response.reason}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in response.headers)
        output.write((head + "\r\n").encode("latin-1"))
    output.write(response.body)
    output.flush()
    if response.protocol_status.name != "REQUEST_COMPLETE":
        print(f"fcgikit request: the app refused: {response.protocol_status.name}", file=sys.stderr)
        return 1
    if args.fail and response.status >= 400:
        return 22
    return 0
