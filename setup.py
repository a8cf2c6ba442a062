"""The optional compiled accelerator; everything else about the package is in pyproject.toml.

The sans-I/O protocol and the server's per-request path are fcgikit's hot path and fully typed
(``mypy --strict``), so mypyc compiles them to C extension modules as they stand: a request
costs less CPU (benchmarks/RESULTS.md, "The compiled build").
The ``.py`` files stay in the package as the fallback. Installing must never fail because of
the accelerator: without mypyc, a C compiler or Python's headers, or with
``FCGIKIT_PURE_PYTHON=1`` set, this prints one line (``pip install -v`` shows it) and
installs pure Python. ``fcgikit --version`` says which one a process runs.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: What mypyc compiles: the protocol's modules, and the server's
#: per-request path (the connection, the request body, the WSGI request, the loop, the pool
#: that runs requests). Not fcgikit/protocol/__init__.py, which reports which build was
#: loaded; not events.py: compiled, its public frozen dataclasses could no longer be copied,
#: pickled or subclassed, and compiling it gained nothing measurable (benchmarks/hotpath.py);
#: not errors.py, where RequestBodyError derives from OSError, which mypyc cannot compile.
#: And not fcgikit/server/watcher.py: its loop runs on the main thread, the one where Python
#: runs signal handlers, and only interpreted code (or C that asks) runs them. Compiled, a
#: SIGTERM that the kernel gave to another thread waited for ever (a prefork worker that
#: never stopped on reload).
COMPILED = [
    "fcgikit/protocol/constants.py",
    "fcgikit/protocol/records.py",
    "fcgikit/protocol/state.py",
    "fcgikit/protocol/connection.py",
    "fcgikit/server/body.py",
    "fcgikit/server/channel.py",
    "fcgikit/server/direct.py",
    "fcgikit/server/pool.py",
    "fcgikit/server/wsgi.py",
    "fcgikit/server/poller.py",
    "fcgikit/server/accept.py",
    "fcgikit/server/stopping.py",
    "fcgikit/server/server.py",
]
#: Hand-written C for the few steps where mypyc's output is still CPython's object model at
#: work (accepting, parsing a whole ordinary request, building the environ, encoding a
#: response head, framing a small response's end, watching the loop without the GIL):
#: each ``_speedups*.c`` file is one extension module, the fast lane of the Python module it
#: is named after, which imports it and runs its own Python where it is missing. A lane
#: answers None when its input is anything but the ordinary case, and the Python then does
#: the full work, errors included. So behaviour never depends on them; with
#: ``FCGIKIT_PURE_PYTHON=1`` they are not even imported. Each package lists its lanes, with
#: their Python twins and the tests that hold them together (fcgikit/server/lanes.py).
SPEEDUPS = sorted(str(path) for path in Path("fcgikit").rglob("_speedups*.c"))
#: The name of the shared library that holds the compiled code (mypyc's default is a hash);
#: each compiled module is a small shim that loads it. It must be a top-level module: mypyc
#: derives the modules' ``__file__`` from its directory. An editable install maps it too.
GROUP = "fcgikit_compiled"


def pure_python(reason: str) -> list[Extension]:
    print(f"fcgikit: {reason}; installing pure Python (slower, same behaviour)", file=sys.stderr)
    # An earlier editable install left compiled modules next to the .py files, and the
    # import system prefers them: remove them, or they would go on shadowing the sources.
    for name in [*COMPILED, *SPEEDUPS, f"{GROUP}__mypyc.py"]:
        source = Path(name)
        for stale in source.parent.glob(f"{source.stem}.*.so"):
            stale.unlink()
    return []


def accelerator() -> list[Extension]:
    if os.environ.get("FCGIKIT_PURE_PYTHON", "") not in ("", "0"):
        return pure_python("FCGIKIT_PURE_PYTHON is set")
    try:
        from mypyc.build import mypycify
    except ImportError:
        return pure_python("mypyc (part of mypy) is not installed")
    try:
        # --follow-imports=silent: mypy still reads what these modules import (fcgikit's
        # __init__ names the middleware, which needs werkzeug, absent from pip's isolated
        # build environment), but only the compiled modules' own errors stop the build.
        compiled = mypycify(
            ["--follow-imports=silent", *COMPILED], group_name=GROUP, target_dir="build/mypyc"
        )
    except (Exception, SystemExit) as error:  # mypyc reports type errors with sys.exit(1)
        return pure_python(f"mypyc failed ({error!r}, its errors are above)")
    speedups = [
        Extension(source.removesuffix(".c").replace("/", "."), [source], extra_compile_args=["-O2"])
        for source in SPEEDUPS
    ]
    return [*compiled, *speedups]


class OptionalBuildExt(build_ext):
    """build_ext that installs pure Python when the C compiler fails."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as error:  # CompileError, LinkError, no compiler at all, ...
            # Drop whatever did get built: a module shim without its shared library would
            # make ``import fcgikit.protocol`` fail, which is worse than no accelerator.
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            self.extensions = []
            pure_python(f"compiling failed ({type(error).__name__}; the compiler said why above)")


setup(ext_modules=accelerator(), cmdclass={"build_ext": OptionalBuildExt})
