"""Replay fuzz inputs without atheris: ``python fuzz/replay.py TARGET FILE_OR_DIR...``.

Each file is run once through the harness; the first failure is re-raised with its traceback,
so a ``crash-*`` file from ``run.py`` becomes a plain Python reproduction.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# The server logs every hostile input; millions of log lines would only slow the run.
logging.disable(logging.CRITICAL)

from protocol_target import connection_input  # noqa: E402
from server_target import server_input  # noqa: E402

TARGETS = {"connection": connection_input, "server": server_input}


def files(paths: list[str]) -> list[Path]:
    found: list[Path] = []
    for name in paths:
        path = Path(name)
        found.extend(sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path])
    return found


def main() -> int:
    if len(sys.argv) < 3 or sys.argv[1] not in TARGETS:
        print(f"usage: {sys.argv[0]} {{{'|'.join(TARGETS)}}} FILE_OR_DIR...", file=sys.stderr)
        return 2
    target = TARGETS[sys.argv[1]]
    inputs = files(sys.argv[2:])
    for path in inputs:
        try:
            target(path.read_bytes())
        except Exception:
            print(f"FAILED: {path}", file=sys.stderr)
            raise
    print(f"{len(inputs)} inputs replayed, no failure")
    return 0


if __name__ == "__main__":
    sys.exit(main())
