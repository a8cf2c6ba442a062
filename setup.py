"""The optional compiled accelerator; everything else about the package is in pyproject.toml.

The sans-I/O protocol and the server's per-request path are fcgikit's hot path and fully typed
(``mypy --strict``), so mypyc compiles them to C extension modules as they stand: a request
costs less CPU (benchmarks/RESULTS.md, "The compiled build").
The ``.py`` files stay in the package as the fallback. Installing must never fail because of
the accelerator: without mypyc, a C compiler or Python's headers, or with
``FCGIKIT_PURE_PYTHON=1`` set, the build installs pure Python. Either way it ends with one line
that starts with ``fcgikit:`` and says which build it made (``pip install -v`` shows it;
``python -m build`` always does), and ``fcgikit --version`` says which one a process runs.

mypyc runs only for a command that builds (a wheel, an editable install): making the sdist,
or reading the metadata, compiles nothing.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: What mypyc compiles: the protocol's modules, and the server's
#: per-request path (the connection, the request body, the WSGI request and the modules it
#: calls into each time: its environ and head codec, its sink, its streams, what it counts for
#: while it waits and what is recorded of it; the loop, the pool that runs requests (and the replies it holds), and what
#: a prefork worker records of each request: the tracker, the scoreboard and the request cells it writes). Not fcgikit/protocol/__init__.py, which reports which build was
#: loaded; not events.py: compiled, its public frozen dataclasses could no longer be copied,
#: pickled or subclassed, and compiling it gained nothing measurable (benchmarks/hotpath.py);
#: not errors.py, where RequestBodyError derives from OSError, which mypyc cannot compile.
#: And not fcgikit/server/watcher.py: its loop runs on the main thread, the one where Python
#: runs signal handlers, and only interpreted code (or C that asks) runs them. Compiled, a
#: SIGTERM that the kernel gave to another thread waited for ever (a prefork worker that
#: never stopped on reload).
COMPILED = [
    "fcgikit/protocol/constants.py",
    "fcgikit/protocol/record_reader.py",
    "fcgikit/protocol/records.py",
    "fcgikit/protocol/name_value_pairs.py",
    "fcgikit/protocol/state.py",
    "fcgikit/protocol/lanes.py",
    "fcgikit/protocol/output.py",
    "fcgikit/protocol/input_events.py",
    "fcgikit/protocol/management.py",
    "fcgikit/protocol/connection.py",
    "fcgikit/protocol/server_output.py",
    "fcgikit/protocol/server_admission.py",
    "fcgikit/protocol/server_connection.py",
    "fcgikit/protocol/whole_request.py",
    "fcgikit/protocol/text_scan.py",
    "fcgikit/protocol/client_connection.py",
    "fcgikit/server/body_storage.py",
    "fcgikit/server/body.py",
    "fcgikit/server/channel.py",
    "fcgikit/server/channel_input.py",
    "fcgikit/server/handover.py",
    "fcgikit/server/direct.py",
    "fcgikit/server/reply.py",
    "fcgikit/server/admission.py",
    "fcgikit/server/pool.py",
    "fcgikit/server/held_replies.py",
    "fcgikit/server/backoff.py",
    "fcgikit/server/wsgi.py",
    "fcgikit/server/request_settings.py",
    "fcgikit/server/wsgi_codec.py",
    "fcgikit/server/sink.py",
    "fcgikit/server/observe.py",
    "fcgikit/server/wsgi_streams.py",
    "fcgikit/server/queued_memory.py",
    "fcgikit/server/request_input.py",
    "fcgikit/server/poller.py",
    "fcgikit/server/accept_pauses.py",
    "fcgikit/server/accept.py",
    "fcgikit/server/stopping.py",
    "fcgikit/server/server.py",
    "fcgikit/server/loop.py",
    "fcgikit/server/cells.py",
    "fcgikit/server/scoreboard.py",
    "fcgikit/server/tracker.py",
]
#: Hand-written C for the few steps where mypyc's output is still CPython's object model at
#: work (accepting, parsing a whole ordinary request, building the environ, encoding a
#: response head, framing a small response's end, watching the loop without the GIL, setting
#: malloc's thresholds without importing ctypes):
#: each ``_speedups*.c`` file is one extension module, the fast lane of the Python module it
#: is named after, which imports it and runs its own Python where it is missing. A lane
#: answers None when its input is anything but the ordinary case, and the Python then does
#: the full work, errors included. So behaviour never depends on them; with
#: ``FCGIKIT_PURE_PYTHON=1`` they are not even imported. Each package lists its lanes, with
#: their Python twins and the tests that hold them together (fcgikit/server/lanes.py).
SPEEDUPS = sorted(str(path) for path in Path("fcgikit").rglob("_speedups*.c"))
#: The name of the shared library that holds the compiled code (mypyc's default is a hash);
#: each compiled module is a small shim that loads it. Inside the package, so that an installed
#: fcgikit adds no top-level module to site-packages.
GROUP = "fcgikit._compiled"
#: Where older builds put it: removed with the other stale builds below.
OLD_GROUP_LIBRARY = "fcgikit_compiled__mypyc.py"


def say(line: str) -> None:
    print(f"fcgikit: {line}", file=sys.stderr, flush=True)


def remove_stale_builds() -> None:
    """For an editable install of pure Python: delete the compiled modules an earlier one left
    next to the .py files, which the import system would go on preferring to the sources.
    (Building a wheel leaves the checkout alone.)"""
    if not EDITABLE.intersection(sys.argv[1:]):
        return
    library = GROUP.replace(".", "/") + "__mypyc.py"
    for name in [*COMPILED, *SPEEDUPS, library, OLD_GROUP_LIBRARY]:
        source = Path(name)
        for stale in source.parent.glob(f"{source.stem}.*.so"):
            stale.unlink()


#: The setup.py commands that build (pip's and build's wheel and editable installs among them).
#: Any other (``sdist``, ``egg_info`` for the metadata) compiles nothing.
BUILDING = {"bdist_wheel", "build", "build_ext", "editable_wheel", "develop", "install"}
#: The commands that build into the checkout itself.
EDITABLE = {"editable_wheel", "develop"}


def speedups() -> list[Extension]:
    return [
        Extension(source.removesuffix(".c").replace("/", "."), [source], extra_compile_args=["-O2"])
        for source in SPEEDUPS
    ]


def pure_python(reason: str) -> list[Extension]:
    remove_stale_builds()
    say(f"{reason}; building pure Python (slower, same behaviour)")
    return []


def accelerator() -> list[Extension]:
    if os.environ.get("FCGIKIT_PURE_PYTHON", "") not in ("", "0"):
        return pure_python("FCGIKIT_PURE_PYTHON is set")
    if not BUILDING.intersection(sys.argv[1:]):
        # The speedups stand for the accelerator: the sdist ships their sources.
        return speedups()
    try:
        from mypyc.build import mypycify
    except ImportError:
        return pure_python("mypyc (part of mypy) is not installed")
    for stale in Path().glob(f"{Path(OLD_GROUP_LIBRARY).stem}.*.so"):
        stale.unlink()  # an older editable install's library, which nothing loads any more
    say(f"compiling the accelerator: {len(COMPILED)} modules with mypyc, then C (a minute)")
    try:
        # --follow-imports=silent: mypy still reads what these modules import (fcgikit's
        # __init__ names the middleware, which needs werkzeug, absent from pip's isolated
        # build environment), but only the compiled modules' own errors stop the build.
        compiled = mypycify(
            ["--follow-imports=silent", *COMPILED], group_name=GROUP, target_dir="build/mypyc"
        )
    except (Exception, SystemExit) as error:  # mypyc reports type errors with sys.exit(1)
        return pure_python(f"mypyc failed ({error!r}, its errors are above)")
    for extension in compiled:
        # The group library's C functions and statics reach each other directly, not through
        # the dynamic linker: exported, each reference was a symbol look-up at every start.
        # The modules find it through capsules; PyInit_ (PyMODINIT_FUNC) stays exported.
        extension.extra_compile_args.append("-fvisibility=hidden")
    return [*compiled, *speedups()]


class OptionalBuildExt(build_ext):
    """build_ext that installs pure Python when the C compiler fails."""

    def run(self) -> None:
        if not self.extensions:
            return
        try:
            super().run()
        except Exception as error:  # CompileError, LinkError, no compiler at all, ...
            # Drop whatever did get built: a module shim without its shared library would
            # make ``import fcgikit.protocol`` fail, which is worse than no accelerator.
            for output in self.get_outputs():
                Path(output).unlink(missing_ok=True)
            self.extensions = []
            name = type(error).__name__
            pure_python(f"compiling failed ({name}; the compiler said why above)")
            return
        say("built the compiled accelerator")


setup(ext_modules=accelerator(), cmdclass={"build_ext": OptionalBuildExt})
