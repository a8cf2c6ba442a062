"""benchmarks/run.py runs end to end, so the harness cannot rot between benchmark runs.

One second of wrk against fcgikit alone (uWSGI, flup and gunicorn live in the benchmark's own
venv, not in the test environment), plus the memory checks shrunk to a few MiB and a few
connections. Nothing here asserts a speed: only that a table row with a positive req/s came
out, and that the memory checks ran and answered correctly.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.integration.harness import require_binary

REPO_ROOT = Path(__file__).resolve().parent.parent
RUN = REPO_ROOT / "benchmarks" / "run.py"


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_harness_produces_a_row_and_memory_checks(tmp_path: Path) -> None:
    require_binary("nginx")
    require_binary("wrk")
    done = subprocess.run(
        [
            sys.executable, str(RUN), "--only", "fcgikit", "--apps", "hello", "--keep", "on",
            "--connections", "4", "--rounds", "1", "--duration", "1", "--warmup", "0",
            "--threads", "2", "--memory-size", str(4 << 20), "--idle-connections", "20",
            "--out", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    rows = [line for line in done.stdout.splitlines() if line.startswith("| plain WSGI hello |")]
    assert len(rows) == 1, done.stdout
    cells = [cell.strip() for cell in rows[0].strip("|").split("|")]
    assert cells[1:4] == ["on", "4", "fcgikit"]
    assert float(cells[4].replace(",", "")) > 0

    results = json.loads((tmp_path / "results.json").read_text())
    (row,) = results["results"]
    assert row["rps"] > 0
    assert row["p99_ms"] is not None
    assert row["errors"] == 0
    memory = results["memory"]
    assert memory["upload"]["ok"] and memory["download"]["ok"]
    assert memory["idle"]["served_one_request_each"] == 20


@pytest.mark.timeout(60)
def test_hot_path_bench_runs_every_stage(tmp_path: Path) -> None:
    """benchmarks/hotpath.py drives fcgikit's internals, so it is the one most likely to break
    when they change: one call of each stage must still run and report a time."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "hotpath.py"), "--number", "1",
         "--repeat", "1"],
        capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    timed = {}
    for line in done.stdout.splitlines()[1:]:
        figure, _, stage = line.strip().partition("  ")
        timed[stage.strip()] = float(figure)
    assert "whole path (socketpair, inline)" in timed
    assert "connection life (one request)" in timed
    assert "the app itself" in timed
    assert all(figure > 0 for figure in timed.values()), done.stdout
