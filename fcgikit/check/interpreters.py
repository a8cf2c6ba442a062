"""Where else a module the app cannot import is installed: the interpreters on this machine.

"It works when I run it" and "ModuleNotFoundError under the web server" is, most often, two
interpreters: the one the packages were installed for (a virtual environment, pyenv) and the
one the ``.fcgi``'s shebang names. :func:`find_module_elsewhere` asks each interpreter it can
find (the system's, pyenv's, virtual environments next to the app) whether it can import the
module, so the diagnosis can name the one to use.
"""

from __future__ import annotations

import json
import os
import re
import sys


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
