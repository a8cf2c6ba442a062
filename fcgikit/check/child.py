"""The child of ``fcgikit check``: the bootstrap that runs in the app's own interpreter.

``fcgikit check`` starts ``<interpreter> -c <this file's source> --child CONFIG`` with the
interpreter a web server would use (the ``.fcgi`` file's shebang), which may not even have
fcgikit installed. So this module imports only the standard library and runs on any Python
3.8+. It reports what it sees (the interpreter, sys.path, an exception, a bind) as JSON lines
on the pipe whose descriptor CONFIG names, then runs the ``.fcgi`` file as ``__main__``, or
serves ``module:app`` on fd 0 as ``fcgikit serve`` would (that mode runs fcgikit's own
interpreter, so there fcgikit is importable).

It also stops an ``app.run()`` at import time: an audit hook sees the development server bind
its TCP port, says where, and exits with :data:`EXIT_APP_RUN`.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import Any, TextIO

#: The child's exit status when it stopped a development server from starting.
EXIT_APP_RUN = 97
#: The argument that tells this file, run with ``-c``, that it is the child.
CHILD_FLAG = "--child"


def is_library_file(filename: str) -> bool:
    """Whether a frame's file is the standard library's or an installed package's, not the app's."""
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
        user = [frame for frame in stack if not is_library_file(frame.filename)]
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


if __name__ == "__main__" and len(sys.argv) > 1 and sys.argv[1] == CHILD_FLAG:
    sys.exit(_child_main(sys.argv[2:]))
