"""benchmarks/run.py runs end to end, so the harness cannot rot between benchmark runs.

One second of wrk against fcgikit alone (uWSGI, flup and gunicorn live in the benchmark's own
venv, not in the test environment), plus the memory checks shrunk to a few MiB and a few
connections. Nothing here asserts a speed: only that a table row with a positive req/s came
out, and that the memory checks ran and answered correctly.
"""

from __future__ import annotations

import glob
import importlib.util
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.harness import missing, require_binary

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
            "--scenarios", "none", "--out", str(tmp_path),
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


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_harness_runs_every_scenario(tmp_path: Path) -> None:
    """Issue 26's cells, each shrunk to a second or a MiB, against what the test environment
    has: fcgikit and php-fpm (uWSGI and gunicorn live in the benchmark's own venv and are left
    out with a note). Each scenario must produce fcgikit's row, with its checks passed."""
    require_binary("nginx")
    require_binary("wrk")
    if not glob.glob("/usr/sbin/php-fpm*"):
        missing("php-fpm not found: install the Debian package php-fpm")
    done = subprocess.run(
        [
            sys.executable, str(RUN), "--no-matrix", "--no-memory", "--scenarios", "all",
            "--rounds", "1", "--duration", "1", "--warmup", "0",
            "--transfer-size", str(1 << 20), "--mix-connections", "4", "--slow-ms", "20",
            "--procs-connections", "4", "--procs-nginx-workers", "2", "--out", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"

    results = json.loads((tmp_path / "results.json").read_text())
    rows = {
        (row["scenario"], row.get("app"), row["contender"]): row for row in results["scenarios"]
    }
    for app in ("hello", "flask"):
        assert rows["procs2", app, "fcgikit --workers 2"]["rps"] > 0
        assert rows["procs2", app, "fcgikit --workers 2"]["errors"] == 0
        assert rows["pure", app, "fcgikit pure Python"]["rps"] > 0
        # the two-process cell ran behind the nginx workers asked for; one process, behind one
        assert rows["procs2", app, "fcgikit --workers 2"]["nginx_workers"] == 2
        assert rows["pure", app, "fcgikit pure Python"]["nginx_workers"] == 1
        assert rows["procs2", app, "fcgikit --workers 2"]["nginx_cpu_us_per_request"] > 0
        # one fcgikit process in the same cell: what a worker's CPU a request is held to
        assert rows["procs2", app, "fcgikit one process"]["cpu_us_per_request"] > 0
        assert rows["procs2", app, "fcgikit --workers 1"]["errors"] == 0
        # worker mode's own cost, read from those rows: one worker and two against one process
        mode = rows["procs2 worker mode", app, "fcgikit"]
        for kind in ("one_worker", "two_procs"):
            assert mode[f"{kind}_cpu_us_per_request"] > 0
            assert mode[f"{kind}_over_one_process"] > 0
            assert mode[f"{kind}_voluntary_switches_per_request"] >= 0
    assert rows["procs2", "hello", "php-fpm static 2"]["errors"] == 0
    for kind in ("upload", "download"):  # a row only when the SHA-256 check passed
        assert rows[kind, None, "fcgikit"]["sha256_checked"], done.stderr
        cell = rows[kind, None, "fcgikit"]
        assert 0 < cell["mib_per_s_p25"] <= cell["mib_per_s"] <= cell["mib_per_s_p75"]
        assert cell["rounds"] == 15  # --rounds 1: fifteen transfers, one round
    for name in ("fcgikit --threads 64", "fcgikit defaults"):
        mix = rows["slowmix", None, name]
        assert mix["instant_requests"] > 0 and mix["errors"] == 0
        assert mix["instant_p99_ms"] is not None
    assert rows["startup", None, "fcgikit"]["first_200_ms"] > 0
    assert rows["startup", None, "fcgikit"]["rounds"] == 5  # --rounds 1: five starts
    assert "| hello | php-fpm static 2 |" in done.stdout
    assert "| flask | fcgikit | " in done.stdout.split("procs2, worker mode")[1]


@pytest.mark.integration
@pytest.mark.timeout(60)
def test_slow_mix_serves_each_contender_untimed_before_its_first_round(tmp_path: Path) -> None:
    """A cold server's first timed round read several times its later rounds' instant p99,
    and always the same contender's: each is warmed up with the mix first, as every other
    cell is with wrk."""
    require_binary("nginx")
    done = subprocess.run(
        [
            sys.executable, str(RUN), "--no-matrix", "--no-memory", "--scenarios", "slowmix",
            "--rounds", "1", "--duration", "0.5", "--warmup", "0.2", "--mix-connections", "4",
            "--slow-ms", "20", "--out", str(tmp_path),
        ],
        capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    lines = done.stderr.splitlines()
    for name in ("fcgikit --threads 64", "fcgikit defaults"):
        warm_up = lines.index(f"  slowmix warm-up {name}: 0.2 s, untimed")
        timed = next(n for n, line in enumerate(lines) if f"slowmix round 1 {name}:" in line)
        assert warm_up < timed


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


@pytest.mark.timeout(60)
def test_lane_cost_bench_reports_each_shapes_cpu_and_the_apps_share(tmp_path: Path) -> None:
    """benchmarks/lanecost.py drives a Server's loop steps by hand: each shape must still
    serve its requests and say the CPU time a request took, and how much of it the app did
    (the part instruction counts cannot show moving: RESULTS.md, pure-Python round 7)."""
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "lanecost.py"), "--requests", "3"],
        capture_output=True, text=True, timeout=50, stdin=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    shapes = {}
    for line in done.stdout.splitlines():
        found = re.fullmatch(
            r"\s*(\w+)\s+([\d.]+) CPU µs/request,\s+([\d.]+) of them in the app", line
        )
        assert found, done.stdout
        shapes[found[1]] = (float(found[2]), float(found[3]))
    assert set(shapes) == {"off", "fresh", "kept"}
    assert all(0 < in_app < whole for whole, in_app in shapes.values()), done.stdout


def test_nginx_keeps_a_connection_for_every_request_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/deploy/nginx.rst's advice, followed by the harness for every backend alike: with
    keep-conn on, the pool holds as many idle connections as a cell has requests in flight,
    so nginx never closes one to open another; ``on32`` is the pool runs before used."""
    spec = importlib.util.spec_from_file_location("bench_run", RUN)
    assert spec is not None and spec.loader is not None
    run = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, run)  # its dataclasses look themselves up
    spec.loader.exec_module(run)
    sites = [
        run.Site(backend, keep, port, tmp_path / f"{backend}-{keep}.sock")
        for port, (backend, keep) in enumerate(
            [("fcgikit", "on"), ("uwsgi", "on"), ("fcgikit", "on32"), ("uwsgi", "off")], 9000
        )
    ]
    config = run.nginx_config(tmp_path, sites, 256)
    upstreams = {
        name: re.findall(r"keepalive (\d+);", block)
        for name, block in re.findall(r"upstream (\w+?)_\d+ \{([^}]*)\}", config)
    }
    assert upstreams == {
        "fcgikit_on": ["256"], "uwsgi_on": ["256"], "fcgikit_on32": ["32"], "uwsgi_off": []
    }  # fmt: skip


@pytest.fixture
def bench_modules(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """benchmarks/run.py and scenarios.py imported as the harness imports them."""
    monkeypatch.syspath_prepend(str(RUN.parent))
    yield importlib.import_module("run"), importlib.import_module("scenarios")
    for name in ("run", "scenarios"):
        sys.modules.pop(name, None)


def test_two_process_cells_run_nginx_as_debian_ships_it(
    tmp_path: Path, bench_modules: tuple[Any, Any]
) -> None:
    """procs2 puts nginx's ``worker_processes auto`` (Debian's nginx.conf) in front of every
    backend alike, unless told a number; the single-process cells keep one worker."""
    run, _ = bench_modules
    parser = run.build_parser()
    sites = [run.Site("fcgikit", "off", 9000, tmp_path / "fcgikit.sock")]
    chosen = parser.parse_args([]).procs_nginx_workers
    for workers, asked in (("auto", (chosen,)), ("1", ())):
        config = run.nginx_config(tmp_path, sites, 64, *asked)
        assert re.findall(r"^worker_processes (\w+);$", config, re.M) == [workers]
    assert parser.parse_args(["--procs-nginx-workers", "1"]).procs_nginx_workers == "1"
    for wrong in ("0", "two", "-1"):
        with pytest.raises(SystemExit):
            parser.parse_args(["--procs-nginx-workers", wrong])


def test_a_transfer_cell_reports_each_sides_spread_not_only_its_median(
    bench_modules: tuple[Any, Any],
) -> None:
    """A transfer's rate swings with where the kernel puts client, nginx and backend: the
    cell gives the quartiles of every contender beside its median, and the table their ratios
    to fcgikit's, so that a ratio of medians is read against the spread of both sides."""
    _, scenarios = bench_modules
    size = 100 << 20
    # a bimodal side (placements at two speeds) and a steady one with the same median
    lucky = [(rate, 0.02) for rate in (1200, 1250, 1300, 2200, 2250, 2300, 2400)]
    steady = [(rate, 0.05) for rate in (2150, 2180, 2190, 2200, 2210, 2220, 2250)]
    cells = [
        scenarios.transfer_row("upload", "fcgikit", size, steady),
        scenarios.transfer_row("upload", "uwsgi", size, lucky),
    ]
    assert [cell["mib_per_s"] for cell in cells] == [2200, 2200]
    assert (cells[0]["mib_per_s_p25"], cells[0]["mib_per_s_p75"]) == (2185, 2215)
    assert (cells[1]["mib_per_s_p25"], cells[1]["mib_per_s_p75"]) == (1275, 2275)
    assert cells[1]["rounds"] == 7
    assert round(cells[1]["cpu_s_per_100_mib"], 3) == 0.02
    table = scenarios.scenario_tables(cells)
    assert "| cell | contender | mib_per_s | x | mib_per_s_p25 | x | mib_per_s_p75 | x |" in table
    assert "| upload | uwsgi | 2,200.00 | 1.00x | 1,275.00 | 0.58x | 2,275.00 | 1.03x |" in table
    # one transfer: its rate is the median and both quartiles
    (alone,) = [scenarios.transfer_row("download", "fcgikit", size, [(900.0, 0.01)])]
    assert alone["mib_per_s_p25"] == alone["mib_per_s"] == alone["mib_per_s_p75"] == 900.0


def test_worker_mode_reading_compares_each_server_with_its_own_single_process(
    bench_modules: tuple[Any, Any],
) -> None:
    """procs2's worker-mode reading: for each app, fcgikit's one worker (with its master) and
    two workers over one plain process, each ``--variant``'s over its own, and uWSGI's 2x1
    over its own 1x1, in CPU a request, user and system apart, so that what worker mode
    costs is told from what a second busy CPU costs any server."""
    _, scenarios = bench_modules

    def cell(app: str, contender: str, user: float, system: float) -> dict[str, Any]:
        return {
            "scenario": "procs2", "app": app, "contender": contender,
            "cpu_us_per_request": user + system, "cpu_user_us_per_request": user,
            "cpu_sys_us_per_request": system, "voluntary_switches_per_request": 0.05,
            "involuntary_switches_per_request": user / 60,
        }  # fmt: skip

    cells = [
        cell("flask", "fcgikit --workers 2", 66.0, 10.0),
        cell("flask", "fcgikit one process", 60.0, 6.0),
        cell("flask", "fcgikit --workers 1", 60.0, 6.0),
        cell("flask", "uwsgi 2 procs x 1 thread", 63.0, 16.0),
        cell("flask", "uwsgi 1 proc x 1 thread", 60.0, 8.0),
        cell("flask", "fcgikit --workers 2 [base]", 69.0, 11.0),
        cell("flask", "fcgikit one process [base]", 60.0, 5.0),
        # a variant without its one-worker row still gets its two-process ratio
        cell("hello", "fcgikit --workers 2", 12.0, 2.0),
        cell("hello", "fcgikit one process", 10.0, 2.0),
    ]
    mode = {(row["app"], row["contender"]): row for row in scenarios.worker_mode_cells(cells)}
    assert set(mode) == {
        ("flask", "fcgikit"), ("flask", "fcgikit [base]"), ("flask", "uwsgi"), ("hello", "fcgikit")
    }  # fmt: skip
    flask = mode["flask", "fcgikit"]
    assert flask["one_worker_over_one_process"] == 1.0
    assert flask["two_procs_over_one_process"] == 76.0 / 66.0
    assert flask["two_procs_user_over_one_process"] == 1.1
    assert mode["flask", "uwsgi"]["two_procs_sys_over_one_process"] == 2.0
    assert mode["flask", "uwsgi"]["one_worker_over_one_process"] is None
    assert mode["flask", "fcgikit [base]"]["two_procs_over_one_process"] == 80.0 / 65.0
    assert mode["hello", "fcgikit"]["one_worker_cpu_us_per_request"] is None
    table = scenarios.scenario_tables([*cells, *mode.values()])
    assert (
        "| flask | fcgikit | 66.00 (60.00 / 6.00) | 66.00 (60.00 / 6.00) | **1.00x** (1.00x / "
        "1.00x) | 76.00 (66.00 / 10.00) | **1.15x** (1.10x / 1.67x) | 0.05 / 1.00 | 0.05 / 1.00 "
        "| 0.05 / 1.10 |"
    ) in table
    assert "| flask | uwsgi | 68.00 (60.00 / 8.00) | - | - | 79.00 (63.00 / 16.00) |" in table
    assert mode["flask", "uwsgi"]["two_procs_involuntary_switches_per_request"] == 63 / 60


def test_free_port_never_gives_one_port_to_two_sites(
    bench_modules: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kernel that hands a just-released port out again (it did: nginx refused the procs2
    stage's config, "duplicate listen options") must not give two sites one port."""
    run, _ = bench_modules
    kernel_ports = iter([41000, 41000, 41001])

    class Socket:
        def __init__(self, *args: object) -> None:
            self.port = next(kernel_ports)

        def __enter__(self) -> Socket:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def bind(self, address: tuple[str, int]) -> None:
            pass

        def getsockname(self) -> tuple[str, int]:
            return (run.HOST, self.port)

    monkeypatch.setattr(run.socket, "socket", Socket)
    assert [run.free_port(), run.free_port()] == [41000, 41001]
