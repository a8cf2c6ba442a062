"""The deployment cells of issue 26, run by ``benchmarks/run`` after (or instead of) its matrix.

Each scenario starts its own nginx and its own contenders, each on a site of its own,
measures them in interleaved rounds (the order rotating each round, as the matrix does) and
reports the median of the rounds with every row's ratio to the first row, fcgikit's:

- ``procs2``: two processes on the two cores, c64, keep-conn off (nginx's default): fcgikit
  ``--workers 2`` (and one fcgikit process, the reference for a worker's CPU a request);
  uWSGI ``--master --processes 2`` with ``--threads 1`` and ``--threads 4``; php-fpm
  ``pm = static`` with 2 children serving ``hello.php`` (hello only); gunicorn ``gthread``
  2 workers x 4 threads behind ``proxy_pass``. nginx runs ``--procs-nginx-workers`` workers
  (``auto``, one per core, as Debian's nginx.conf has it); every other scenario, one process
  per backend, runs nginx with one. wrk: req/s, p50, p99, the backend's CPU per request (its
  children included) and nginx's (its workers').
- ``upload`` / ``download``: ``--transfer-size`` bytes (100 MiB) streamed through nginx with
  request and response buffering off, one client: MiB/s (median and quartiles of
  ``TRANSFERS_A_ROUND`` transfers a round) and the backend's CPU per transfer.
  Before the rounds, one transfer per contender is checked end to end with SHA-256 (the app
  hashes the upload, ``/sha256``; the client hashes the download); the timed rounds count
  bytes only, so that hashing costs neither side CPU that the transfer would be charged for.
- ``slowmix``: c64 HTTP/1.1 keep-alive clients (asyncio, in this process), a
  ``--slow-fraction`` of requests sleeping ``--slow-ms`` in the app, the rest the hello; the
  *instant* requests' p50/p99/p99.9 measured client-side per request. fcgikit ``--threads
  64`` against uWSGI with 64 threads, and fcgikit with no tuning flags at all.
- ``pure``: fcgikit compiled against the same tree with ``FCGIKIT_PURE_PYTHON=1`` (what a host
  without a compiler runs), hello and Flask, keep-conn on, c16.
- ``startup``: from spawning the process (Flask imported) to the first 200 through nginx,
  fcgikit against uWSGI, ``STARTS_A_ROUND`` starts per contender per round (interleaved,
  the order rotating each start; the median of them all), after one uncounted start each
  (bytecode and page caches filled, as for a restart).

A contender whose software is missing is left out with a note, so the smoke test can run
the scenarios with fcgikit alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import glob
import hashlib
import http.client
import os
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import run
from run import BENCH_DIR, HOST, MiB, Process, Site, Wrk, WrkResult

SCENARIOS = ("procs2", "upload", "download", "slowmix", "pure", "startup")

Argv = Callable[[Path, Path], list[str]]  # (socket, work dir) -> argv


@dataclass(frozen=True)
class Contender:
    name: str
    argv: Argv
    protocol: str = "fastcgi"
    env: dict[str, str] = field(default_factory=dict)
    #: what it cannot serve here, or None
    missing: Callable[[], str | None] = lambda: None
    #: the apps it serves (php-fpm: hello only)
    apps: frozenset[str] = frozenset({"hello", "flask"})
    #: a php-fpm pool: nginx names the script in SCRIPT_FILENAME
    php: bool = False
    #: import fcgikit from this directory (a ``--variant`` with ``path=``)
    pythonpath: Path | None = None


def _fcgikit(*options: str) -> Argv:
    def argv(sock: Path, workdir: Path) -> list[str]:
        return [
            sys.executable, "-m", "fcgikit", "serve", "apps:application",
            "--bind", f"unix:{sock}", "--log-level", "warning", *options,
        ]  # fmt: skip

    return argv


def _uwsgi(*options: str) -> Argv:
    def argv(sock: Path, workdir: Path) -> list[str]:
        return [
            run._bin("uwsgi") or "uwsgi", "--fastcgi-socket", str(sock),
            "--module", "apps:application", "--pythonpath", str(BENCH_DIR), "--die-on-term",
            "--disable-logging", "--listen", "1024", "--need-app", "--buffer-size", "32768",
            *options,
        ]  # fmt: skip

    return argv


def _gunicorn_gthread(sock: Path, workdir: Path) -> list[str]:
    return [
        sys.executable, "-m", "gunicorn", "--workers", "2", "--worker-class", "gthread",
        "--threads", "4", "--bind", f"unix:{sock}", "--backlog", "1024",
        "--log-level", "warning", "--chdir", str(BENCH_DIR), "apps:application",
    ]  # fmt: skip


def php_fpm_binary() -> str | None:
    """Debian's php-fpm is versioned (``/usr/sbin/php-fpm8.2``); the newest one found."""
    found = run.find_binary("php-fpm") or next(
        iter(sorted(glob.glob("/usr/sbin/php-fpm[0-9]*"), reverse=True)), None
    )
    return found


PHP_FPM_CONF = """\
[global]
pid = {workdir}/php-fpm.pid
error_log = {workdir}/php-fpm-error.log
daemonize = no

[bench]
{user}listen = {sock}
listen.backlog = 1024
pm = static
pm.max_children = 2
pm.max_requests = 0
"""


def _php_fpm(sock: Path, workdir: Path) -> list[str]:
    conf = workdir / "php-fpm.conf"
    user = "user = root\ngroup = root\n" if os.geteuid() == 0 else ""
    conf.write_text(PHP_FPM_CONF.format(workdir=workdir, sock=sock, user=user))
    binary = php_fpm_binary() or "php-fpm"
    return [binary, "--nodaemonize", "--fpm-config", str(conf), *(["-R"] * (os.geteuid() == 0))]


def _python_module(module: str) -> Callable[[], str | None]:
    return run._module_missing(module, f"pip install {module}")


def _uwsgi_missing() -> str | None:
    return None if run._bin("uwsgi") else "uwsgi not installed (pip install uwsgi)"


def _php_missing() -> str | None:
    return None if php_fpm_binary() else "php-fpm not installed (Debian package php-fpm)"


def contenders(
    scenario: str, variants: dict[str, tuple[Path | None, int | None]]
) -> list[Contender]:
    """The rows of ``scenario``, fcgikit's first (every ratio is taken against it), then each
    fcgikit row again for each ``--variant`` (``fcgikit-NAME`` -> the directory it imports
    fcgikit from, and its ``--threads``, which wins over the row's), to compare a change with
    the tree in the same run."""
    rows = _contenders(scenario)
    for variant, (path, threads) in variants.items():
        rows += [
            dataclasses.replace(
                row,
                name=f"{row.name} [{variant}]",
                pythonpath=path,
                argv=row.argv if threads is None else _with_threads(row.argv, threads),
            )
            for row in list(rows)
            if row.name.startswith("fcgikit") and "[" not in row.name
        ]
    return rows


def _with_threads(argv: Argv, threads: int) -> Argv:
    return lambda sock, workdir: [*argv(sock, workdir), "--threads", str(threads)]


def _contenders(scenario: str) -> list[Contender]:
    uwsgi_missing = _uwsgi_missing
    if scenario == "procs2":
        return [
            Contender("fcgikit --workers 2", _fcgikit("--workers", "2")),
            # The reference for "a worker spends no more CPU a request than one process":
            # the same nginx, load and cell, so the CPU a request is compared like for like.
            Contender("fcgikit one process", _fcgikit()),
            # Worker mode's own cost, without a second busy CPU (WORKER_MODE).
            Contender("fcgikit --workers 1", _fcgikit("--workers", "1")),
            Contender(
                "uwsgi 2 procs x 1 thread",
                _uwsgi("--master", "--processes", "2", "--threads", "1"),
                missing=uwsgi_missing,
            ),
            # What two busy processes cost a request over one, for a server that is not
            # fcgikit: the machine's share of a worker's excess (WORKER_MODE).
            Contender(
                "uwsgi 1 proc x 1 thread",
                _uwsgi("--master", "--processes", "1", "--threads", "1"),
                missing=uwsgi_missing,
            ),
            Contender(
                "uwsgi 2 procs x 4 threads",
                _uwsgi("--master", "--processes", "2", "--threads", "4"),
                missing=uwsgi_missing,
            ),
            Contender(
                "php-fpm static 2",
                _php_fpm,
                missing=_php_missing,
                apps=frozenset({"hello"}),
                php=True,
            ),
            Contender(
                "gunicorn gthread 2x4",
                _gunicorn_gthread,
                protocol="http",
                missing=_python_module("gunicorn"),
            ),
        ]
    if scenario in ("upload", "download"):
        return [
            Contender("fcgikit", _fcgikit(), env={"FCGIKIT_BENCH_PLAIN": "1"}),
            Contender(
                "uwsgi",
                _uwsgi("--processes", "1"),
                env={"FCGIKIT_BENCH_PLAIN": "1"},
                missing=uwsgi_missing,
            ),
        ]
    if scenario == "slowmix":
        return [
            Contender("fcgikit --threads 64", _fcgikit("--threads", "64")),
            Contender(
                "uwsgi 1 proc x 64 threads", _uwsgi("--threads", "64"), missing=uwsgi_missing
            ),
            Contender("fcgikit defaults", _fcgikit()),
        ]
    if scenario == "pure":
        return [
            Contender("fcgikit compiled", _fcgikit()),
            Contender("fcgikit pure Python", _fcgikit(), env={"FCGIKIT_PURE_PYTHON": "1"}),
        ]
    if scenario == "startup":
        return [
            Contender("fcgikit", _fcgikit()),
            Contender("uwsgi", _uwsgi("--processes", "1"), missing=uwsgi_missing),
        ]
    raise ValueError(scenario)


# --------------------------------------------------------------------------- one stage


class Stage:
    """One nginx and the contenders of one scenario, each on a site of its own."""

    def __init__(
        self,
        bench: run.Bench,
        scenario: str,
        rows: Sequence[Contender],
        keep: str,
        streaming: bool = False,
        nginx_workers: str = "1",
    ) -> None:
        self.bench = bench
        self.workdir = bench.workdir / scenario
        self.workdir.mkdir()
        (self.workdir / "nginx-temp").mkdir()
        self.rows = list(rows)
        self.sites: dict[str, Site] = {}
        self.processes: dict[str, Process] = {}
        self.all_processes: list[Process] = []
        php = f"        fastcgi_param SCRIPT_FILENAME {BENCH_DIR / 'hello.php'};\n"
        for index, row in enumerate(self.rows):
            self.sites[row.name] = Site(
                f"c{index}",
                keep,
                run.free_port(),
                self.socket(row),
                streaming,
                protocol=row.protocol,
                extra_params=php if row.php else "",
            )
        conf = self.workdir / "nginx.conf"
        sites = list(self.sites.values())
        conf.write_text(run.nginx_config(self.workdir, sites, bench.in_flight, nginx_workers))
        args = bench.args
        self.nginx = self._spawn("nginx", [args.nginx, "-c", str(conf), "-p", str(self.workdir)])

    def socket(self, row: Contender) -> Path:
        return self.workdir / f"c{self.rows.index(row)}.sock"

    def _spawn(self, name: str, argv: list[str], row: Contender | None = None) -> Process:
        process = self.bench.spawn(
            name,
            argv,
            env=row.env if row else None,
            pythonpath=row.pythonpath if row else None,
            workdir=self.workdir,
        )
        self.all_processes.append(process)
        return process

    def start(self, row: Contender) -> Process:
        sock = self.socket(row)
        with contextlib.suppress(FileNotFoundError):
            sock.unlink()
        name = f"c{self.rows.index(row)}"
        process = self._spawn(name, row.argv(sock, self.workdir), row)
        self.processes[row.name] = process
        return process

    def start_all(self) -> None:
        for row in self.rows:
            self.start(row).wait_for_unix_socket(self.socket(row))
        for site in self.sites.values():
            self.nginx.wait_for_port(site.port)

    def stop(self, row: Contender) -> None:
        self.processes.pop(row.name).stop()

    def close(self) -> None:
        for process in reversed(self.all_processes):
            process.stop()

    def port(self, row: Contender) -> int:
        return self.sites[row.name].port

    def pid(self, row: Contender) -> int:
        return self.processes[row.name].pid


def rotations(rows: Sequence[Contender], rounds: int) -> list[list[Contender]]:
    """Each round's order: every row first once in turn, so that noise hits all alike."""
    return [list(rows[r % len(rows) :]) + list(rows[: r % len(rows)]) for r in range(rounds)]


def progress(text: str) -> None:
    print(f"  {text}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------- wrk cells


def wrk_cells(
    bench: run.Bench,
    scenario: str,
    keep: str,
    connections: int,
    apps: Sequence[str],
    nginx_workers: str = "1",
) -> list[dict[str, Any]]:
    """req/s, p50, p99 and CPU µs a request (the backend's, nginx's) for each (app,
    contender), median of rounds."""
    args = bench.args
    rows = usable(bench, contenders(scenario, bench.variants))
    stage = Stage(bench, scenario, rows, keep, nginx_workers=nginx_workers)
    wrk = Wrk(args.wrk, bench.workdir, args.wrk_threads)
    results: dict[tuple[str, str], list[CellRound]] = {}
    workers_seen = 0
    try:
        stage.start_all()
        plan = []
        for app_name in apps:
            app = run.APPS[app_name]
            rows = []
            for row in stage.rows:
                if app_name not in row.apps:
                    continue
                problem = run.sanity_check(stage.sites[row.name], app)
                if problem is not None:
                    bench.note(f"{scenario} {row.name} {app_name}: skipped, {problem}")
                    continue
                if args.warmup > 0:
                    wrk.run(app, stage.port(row), connections, args.warmup)
                rows.append(row)
            plan.append((app, rows))
        for number, _ in enumerate(range(args.rounds)):
            for app, rows in plan:
                for row in rotations(rows, args.rounds)[number] if rows else []:
                    user, system = run.cpu_times(stage.pid(row))
                    voluntary, involuntary = run.context_switches(stage.pid(row))
                    nginx_before = run.cpu_seconds(stage.nginx.pid)
                    result = wrk.run(app, stage.port(row), connections, args.duration)
                    user_after, system_after = run.cpu_times(stage.pid(row))
                    voluntary_after, involuntary_after = run.context_switches(stage.pid(row))
                    nginx_used = run.cpu_seconds(stage.nginx.pid) - nginx_before
                    results.setdefault((app.name, row.name), []).append(
                        CellRound(
                            result,
                            user_after - user,
                            system_after - system,
                            nginx_used,
                            voluntary_after - voluntary,
                            involuntary_after - involuntary,
                        )
                    )
                    progress(
                        f"{scenario} round {number + 1} {app.name} {row.name}: "
                        f"{result.rps:,.0f} req/s, p99 {run._fmt_ms(result.p99_ms)}"
                    )
        workers_seen = len(run.children(stage.nginx.pid))  # all up: they served the rounds
    finally:
        stage.close()
    summary = []
    for (app_name, name), runs in results.items():
        summary.append(
            {
                "scenario": scenario,
                "app": app_name,
                "keep_conn": keep,
                "connections": connections,
                "contender": name,
                "rps": _median([r.wrk.rps for r in runs]),
                "p50_ms": _median([r.wrk.p50_ms for r in runs]),
                "p99_ms": _median([r.wrk.p99_ms for r in runs]),
                "cpu_us_per_request": _median([r.per_request(r.user + r.system) for r in runs]),
                "cpu_user_us_per_request": _median([r.per_request(r.user) for r in runs]),
                "cpu_sys_us_per_request": _median([r.per_request(r.system) for r in runs]),
                "nginx_cpu_us_per_request": _median([r.per_request(r.nginx) for r in runs]),
                # per request, the backend's threads': a request handed to another thread
                # switches voluntarily; a thread preempted, involuntarily
                "voluntary_switches_per_request": _median([r.each(r.voluntary) for r in runs]),
                "involuntary_switches_per_request": _median([r.each(r.involuntary) for r in runs]),
                "nginx_workers": workers_seen,
                "errors": sum(r.wrk.errors for r in runs),
                "rounds": len(runs),
            }
        )
    return summary


@dataclass(frozen=True)
class CellRound:
    """One round of one cell: wrk's figures and the CPU seconds it cost."""

    wrk: WrkResult
    #: the backend's, its children included
    user: float
    system: float
    #: nginx's, its workers'
    nginx: float
    #: the backend's context switches, its threads' and its children's
    voluntary: int = 0
    involuntary: int = 0

    def per_request(self, seconds: float) -> float | None:
        """µs a request."""
        return self.each(seconds * 1e6)

    def each(self, count: float) -> float | None:
        return count / self.wrk.requests if self.wrk.requests else None


#: Worker mode's cost (issue 26, item 2: "a worker spends no more CPU a request than a single
#: process does"), read from procs2's rows of the same app, per server: (the label, its two
#: busy processes, its one worker with its master, its one plain process). Over one process,
#: ``--workers 1`` is what worker mode itself costs; ``--workers 2`` adds a second busy CPU
#: (nginx's wake-ups then preempt a worker, and the two share the caches). uWSGI's 2x1
#: against its own 1x1 shows what that second busy CPU costs a server that is not fcgikit.
WORKER_MODE = (
    ("fcgikit", "fcgikit --workers 2", "fcgikit --workers 1", "fcgikit one process"),
    ("uwsgi", "uwsgi 2 procs x 1 thread", None, "uwsgi 1 proc x 1 thread"),
)


SWITCHES = ("voluntary_switches_per_request", "involuntary_switches_per_request")


def worker_mode_cells(cells: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The worker-mode reading of procs2's cells: for each app and server (each ``--variant``
    of fcgikit too), the backend's CPU µs a request (all, user, system) with two busy
    processes, one worker and one process, and the first two over the last."""
    found = {
        (cell["app"], cell["contender"]): cell for cell in cells if cell["scenario"] == "procs2"
    }
    suffixes = sorted({name[name.index(" [") :] for _, name in found if " [" in name})
    out = []
    for app in dict.fromkeys(app for app, _ in found):
        for label, two, one_worker, single in WORKER_MODE:
            for suffix in ["", *suffixes] if label == "fcgikit" else [""]:
                reference = found.get((app, single + suffix))
                if reference is None:
                    continue
                row: dict[str, Any] = {
                    "scenario": "procs2 worker mode", "app": app, "contender": label + suffix,
                }  # fmt: skip
                for kind, name in (("two_procs", two), ("one_worker", one_worker)):
                    cell = found.get((app, (name or "") + suffix))
                    for key in SWITCHES:
                        row[f"{kind}_{key}"] = (cell or {}).get(key)
                    for part in ("", "user_", "sys_"):
                        key = f"cpu_{part}us_per_request"
                        mine, theirs = (cell or {}).get(key), reference.get(key)
                        row[f"{kind}_{key}"] = mine
                        row[f"{kind}_{part}over_one_process"] = (
                            mine / theirs if mine and theirs else None
                        )
                for part in ("", "user_", "sys_"):
                    key = f"cpu_{part}us_per_request"
                    row[f"one_process_{key}"] = reference.get(key)
                for key in SWITCHES:
                    row[f"one_process_{key}"] = reference.get(key)
                out.append(row)
    return out


def usable(bench: run.Bench, rows: Sequence[Contender]) -> list[Contender]:
    kept = []
    for row in rows:
        problem = row.missing()
        if problem is None:
            kept.append(row)
        else:
            bench.note(f"leaving out {row.name}: {problem}")
    return kept


def _median(values: Sequence[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


# --------------------------------------------------------------------------- transfers


def stream_block(size: int = MiB) -> bytes:
    """The upload's repeated block: not zeros, so that a misplaced piece changes the hash."""
    return random.Random(26).randbytes(size)


def upload(port: int, size: int, path: str) -> tuple[int, bytes]:
    block = stream_block()
    conn = http.client.HTTPConnection(HOST, port, timeout=600)
    try:
        conn.putrequest("POST", path)
        conn.putheader("Content-Type", "application/octet-stream")
        conn.putheader("Content-Length", str(size))
        conn.endheaders()
        left = size
        while left > 0:
            piece = block if left >= len(block) else block[:left]
            conn.send(piece)
            left -= len(piece)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def expected_upload_digest(size: int) -> str:
    block = stream_block()
    digest = hashlib.sha256()
    for offset in range(0, size, len(block)):
        digest.update(block[: min(len(block), size - offset)])
    return digest.hexdigest()


def check_transfer(kind: str, port: int, size: int) -> str | None:
    """None when one whole transfer arrives intact (SHA-256), else what went wrong."""
    if kind == "upload":
        status, body = upload(port, size, "/sha256")
        if status != 200 or body.decode("ascii", "replace") != expected_upload_digest(size):
            return f"upload: status {status}, digest {body[:64]!r}"
        return None
    digest = hashlib.sha256()
    status, received = run.download(port, size, digest)
    if status != 200 or digest.hexdigest() != hashlib.sha256(bytes(size)).hexdigest():
        return f"download: status {status}, {received} of {size} bytes, or a wrong digest"
    return None


#: a 100 MiB transfer takes a fraction of a second: each round makes several per contender.
#: One transfer's rate is mostly where the kernel put its three stages (client, nginx, the
#: backend) on two cores, decided afresh each transfer: a uWSGI upload ran at 2,200-2,500
#: MiB/s with the client alone on a core and half that with nginx beside the client
#: (benchmarks/RESULTS.md, "the transfer cells, round 12"). Fifteen a round, so that the
#: median and quartiles weigh the placements as often as they happen, not as one lucky run
#: drew them.
TRANSFERS_A_ROUND = 15


def transfer_cells(bench: run.Bench, kind: str) -> list[dict[str, Any]]:
    args = bench.args
    size = args.transfer_size
    stage = Stage(
        bench, kind, usable(bench, contenders(kind, bench.variants)), "on", streaming=True
    )
    runs: dict[str, list[tuple[float, float]]] = {}
    try:
        stage.start_all()
        rows = []
        for row in stage.rows:
            problem = check_transfer(kind, stage.port(row), size)
            if problem is None:
                rows.append(row)
            else:
                bench.note(f"{kind} {row.name}: skipped, {problem}")
        rounds = args.rounds * TRANSFERS_A_ROUND
        for number, order in enumerate(rotations(rows, rounds) if rows else []):
            for row in order:
                pid, port = stage.pid(row), stage.port(row)
                cpu_before = run.cpu_seconds(pid)
                started = time.monotonic()
                if kind == "upload":
                    status, body = upload(port, size, "/upload")
                    ok = status == 200 and body == b"%d" % size
                else:
                    status, received = run.download(port, size)
                    ok = status == 200 and received == size
                seconds = time.monotonic() - started
                cpu = run.cpu_seconds(pid) - cpu_before
                if not ok:
                    bench.note(f"{kind} {row.name} round {number + 1}: status {status}, wrong")
                    continue
                runs.setdefault(row.name, []).append((size / MiB / seconds, cpu))
                progress(f"{kind} round {number + 1} {row.name}: {size / MiB / seconds:.0f} MiB/s")
    finally:
        stage.close()
    return [transfer_row(kind, name, size, values) for name, values in runs.items()]


def transfer_row(
    kind: str, name: str, size: int, values: Sequence[tuple[float, float]]
) -> dict[str, Any]:
    """One contender's cell from its transfers' (MiB/s, CPU s): the median rate and its
    quartiles (the spread the placement of the stages makes: a ratio of medians alone hides
    whether one side's every transfer is slower or only its median moved), the CPU summed."""
    rates = [rate for rate, _ in values]
    low, middle, high = (
        statistics.quantiles(rates, n=4, method="inclusive") if len(rates) > 1 else rates * 3
    )
    return {
        "scenario": kind,
        "contender": name,
        "size_mib": size / MiB,
        "mib_per_s": middle,
        "mib_per_s_p25": low,
        "mib_per_s_p75": high,
        # summed: one transfer takes a few clock ticks of CPU
        "cpu_s_per_100_mib": sum(cpu for _, cpu in values) / (len(values) * size / MiB) * 100,
        "sha256_checked": True,
        "rounds": len(values),
    }


# --------------------------------------------------------------------------- the slow mix


async def _client(
    port: int, deadline: float, rng: random.Random, fraction: float, slow_ms: int, out: dict
) -> None:
    reader, writer = await asyncio.open_connection(HOST, port)
    instant = f"GET /hello HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    slow = f"GET /slow?ms={slow_ms} HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode()
    try:
        while time.monotonic() < deadline:
            is_slow = rng.random() < fraction
            started = time.perf_counter()
            writer.write(slow if is_slow else instant)
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
            elapsed = time.perf_counter() - started
            if not head.startswith(b"HTTP/1.1 200"):
                out["errors"] += 1
            out["slow" if is_slow else "instant"].append(elapsed * 1000)
    except (OSError, asyncio.IncompleteReadError, ValueError):
        out["errors"] += 1
    finally:
        writer.close()


def slow_mix_once(port: int, connections: int, seconds: float, fraction: float, slow_ms: int,
                  seed: int) -> dict[str, Any]:  # fmt: skip
    """``connections`` keep-alive clients for ``seconds``: every request's latency."""
    out: dict[str, Any] = {"instant": [], "slow": [], "errors": 0}

    async def main() -> None:
        deadline = time.monotonic() + seconds
        await asyncio.gather(
            *(
                _client(port, deadline, random.Random(seed * 1000 + n), fraction, slow_ms, out)
                for n in range(connections)
            )
        )

    asyncio.run(main())
    return out


def percentile(values: Sequence[float], fraction: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def slow_mix_cells(bench: run.Bench) -> list[dict[str, Any]]:
    args = bench.args
    stage = Stage(bench, "slowmix", usable(bench, contenders("slowmix", bench.variants)), "off")
    rounds: dict[str, list[dict[str, Any]]] = {}
    try:
        stage.start_all()
        # Each contender serves the mix for --warmup seconds first, as every other cell does:
        # a cold server's first timed round read 2-4x or more its later rounds' instant p99
        # (its threads and nginx's connections to it made on demand), always one contender's.
        if args.warmup > 0:
            for row in stage.rows:
                progress(f"slowmix warm-up {row.name}: {args.warmup:g} s, untimed")
                slow_mix_once(
                    stage.port(row), args.mix_connections, args.warmup, args.slow_fraction,
                    args.slow_ms, args.rounds,
                )  # fmt: skip
        for number, order in enumerate(rotations(stage.rows, args.rounds)):
            for row in order:
                out = slow_mix_once(
                    stage.port(row), args.mix_connections, args.duration, args.slow_fraction,
                    args.slow_ms, number,
                )  # fmt: skip
                summary = {
                    "instant_p50_ms": percentile(out["instant"], 0.50),
                    "instant_p99_ms": percentile(out["instant"], 0.99),
                    "instant_p999_ms": percentile(out["instant"], 0.999),
                    "instant_requests": len(out["instant"]),
                    "slow_requests": len(out["slow"]),
                    "errors": out["errors"],
                }
                rounds.setdefault(row.name, []).append(summary)
                progress(
                    f"slowmix round {number + 1} {row.name}: instant p99 "
                    f"{run._fmt_ms(summary['instant_p99_ms'])}, "
                    f"{summary['instant_requests']} instant, {summary['slow_requests']} slow"
                )
    finally:
        stage.close()
    cells = []
    for name, values in rounds.items():
        cell: dict[str, Any] = {"scenario": "slowmix", "contender": name}
        for key in ("instant_p50_ms", "instant_p99_ms", "instant_p999_ms"):
            cell[key] = _median([v[key] for v in values])
        for key in ("instant_requests", "slow_requests", "errors"):
            cell[key] = sum(v[key] for v in values)
        cells.append(cell)
    return cells


# --------------------------------------------------------------------------- start-up


def first_200_after(port: int, started: float, process: Process, timeout: float) -> float:
    """Seconds from ``started`` to the first 200 through nginx (it answers 502 until then)."""
    while True:
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = run.http_request(port, "GET", "/hello", timeout=5)
            if status == 200:
                return time.monotonic() - started
        if process.popen.poll() is not None:
            raise process.fail("exited before answering")
        if time.monotonic() - started > timeout:
            raise process.fail(f"no 200 within {timeout:g}s")
        time.sleep(0.001)  # a benchmark's poll, not a test's synchronisation


#: A start's time through nginx spreads 126-213 ms round to round for the same code on this
#: machine (benchmarks/RESULTS.md, "Issue 26 after the round-23 merges"), so one start a
#: contender a round lets a single slow start move the median; five a round, interleaved.
STARTS_A_ROUND = 5


def startup_cells(bench: run.Bench) -> list[dict[str, Any]]:
    args = bench.args
    stage = Stage(bench, "startup", usable(bench, contenders("startup", bench.variants)), "off")
    times: dict[str, list[float]] = {}
    try:
        for site in stage.sites.values():
            stage.nginx.wait_for_port(site.port)
        # One start each that is not counted: it fills the bytecode cache (see run.Bench.spawn)
        # and the page cache, which every later start finds full, as a restart does.
        for row in stage.rows:
            started = time.monotonic()
            first_200_after(stage.port(row), started, stage.start(row), run.STARTUP_TIMEOUT)
            stage.stop(row)
        starts = args.rounds * STARTS_A_ROUND
        for number, order in enumerate(rotations(stage.rows, starts)):
            for row in order:
                started = time.monotonic()
                process = stage.start(row)
                seconds = first_200_after(stage.port(row), started, process, run.STARTUP_TIMEOUT)
                stage.stop(row)
                times.setdefault(row.name, []).append(seconds * 1000)
                progress(f"startup start {number + 1} {row.name}: {seconds * 1000:.0f} ms")
    finally:
        stage.close()
    return [
        {
            "scenario": "startup",
            "contender": name,
            "first_200_ms": statistics.median(values),
            "rounds": len(values),
        }
        for name, values in times.items()
    ]


# --------------------------------------------------------------------------- all of them


def run_scenarios(bench: run.Bench, names: Sequence[str]) -> list[dict[str, Any]]:
    args = bench.args
    cells: list[dict[str, Any]] = []
    for name in names:
        progress(f"scenario {name} ...")
        if name == "procs2":
            procs = wrk_cells(
                bench,
                "procs2",
                "off",
                args.procs_connections,
                ["hello", "flask"],
                nginx_workers=args.procs_nginx_workers,
            )
            cells += procs + worker_mode_cells(procs)
        elif name in ("upload", "download"):
            cells += transfer_cells(bench, name)
        elif name == "slowmix":
            cells += slow_mix_cells(bench)
        elif name == "pure":
            cells += wrk_cells(bench, "pure", "on", 16, ["hello", "flask"])
        elif name == "startup":
            cells += startup_cells(bench)
    return cells


#: per scenario, the figure a row is judged by and whether more is better
MEASURES = {
    "procs2": [
        ("rps", True),
        ("p99_ms", False),
        ("cpu_us_per_request", False),
        ("nginx_cpu_us_per_request", False),
    ],
    "pure": [("rps", True), ("cpu_us_per_request", False)],
    "upload": [
        ("mib_per_s", True),
        ("mib_per_s_p25", True),
        ("mib_per_s_p75", True),
        ("cpu_s_per_100_mib", False),
    ],
    "download": [
        ("mib_per_s", True),
        ("mib_per_s_p25", True),
        ("mib_per_s_p75", True),
        ("cpu_s_per_100_mib", False),
    ],
    "slowmix": [("instant_p50_ms", False), ("instant_p99_ms", False), ("instant_p999_ms", False)],
    "startup": [("first_200_ms", False)],
}


def scenario_tables(cells: Sequence[dict[str, Any]]) -> str:
    """One markdown table per scenario; "x" columns are each row over the first (fcgikit's)."""
    out = []
    for scenario, measures in MEASURES.items():
        rows = [cell for cell in cells if cell["scenario"] == scenario]
        if not rows:
            continue
        names = [name for name, _ in measures]
        out.append(f"\n{scenario}:\n")
        out.append("| cell | contender | " + " | ".join(f"{n} | x" for n in names) + " |")
        out.append("|---|---|" + "---:|---:|" * len(names))
        reference: dict[str, dict[str, Any]] = {}
        for cell in rows:
            reference.setdefault(cell.get("app", ""), cell)
        for cell in rows:
            first = reference[cell.get("app", "")]
            figures = []
            for name in names:
                value, base = cell.get(name), first.get(name)
                figures.append("-" if value is None else f"{value:,.2f}")
                figures.append(f"{value / base:.2f}x" if value and base else "-")
            label = cell.get("app", "") or scenario
            out.append(f"| {label} | {cell['contender']} | " + " | ".join(figures) + " |")
    out += worker_mode_table(cells)
    return "\n".join(out)


def worker_mode_table(cells: Sequence[dict[str, Any]]) -> list[str]:
    """procs2's worker-mode reading (``worker_mode_cells``) as markdown lines."""
    rows = [cell for cell in cells if cell["scenario"] == "procs2 worker mode"]
    if not rows:
        return []

    def cpu(row: dict[str, Any], kind: str) -> str:
        total, user, system = (
            row.get(f"{kind}_cpu_{part}us_per_request") for part in ("", "user_", "sys_")
        )
        if total is None:
            return "-"
        return f"{total:,.2f} ({user or 0:,.2f} / {system or 0:,.2f})"

    def ratio(row: dict[str, Any], kind: str) -> str:
        total, user, system = (
            row.get(f"{kind}_{part}over_one_process") for part in ("", "user_", "sys_")
        )
        if total is None:
            return "-"
        parts = [f"{value:.2f}x" if value else "-" for value in (user, system)]
        return f"**{total:.2f}x** ({parts[0]} / {parts[1]})"

    def switches(row: dict[str, Any], kind: str) -> str:
        found = [row.get(f"{kind}_{key}") for key in SWITCHES]
        return "-" if None in found else " / ".join(f"{value:.2f}" for value in found)

    out = [
        "\nprocs2, worker mode: the backend's CPU µs a request (user / sys), over one process's;"
        " its context switches a request (voluntary / involuntary):\n",
        "| app | server | one process | one worker + master | / one process "
        "| two busy processes | / one process | switches: one process | one worker | two |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        figures = [
            cpu(row, "one_process"),
            cpu(row, "one_worker"),
            ratio(row, "one_worker"),
            cpu(row, "two_procs"),
            ratio(row, "two_procs"),
            switches(row, "one_process"),
            switches(row, "one_worker"),
            switches(row, "two_procs"),
        ]
        out.append(f"| {row['app']} | {row['contender']} | " + " | ".join(figures) + " |")
    return out


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--scenarios",
        default="all",
        metavar="NAMES",
        help=f"issue 26's cells after the matrix: all, none, or some of {','.join(SCENARIOS)}",
    )
    parser.add_argument(
        "--matrix",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the backend x app x keep x connections matrix (--no-matrix: scenarios only)",
    )
    parser.add_argument("--transfer-size", type=int, default=100 * MiB, help="upload/download")
    parser.add_argument("--procs-connections", type=int, default=64)
    parser.add_argument(
        "--procs-nginx-workers",
        type=nginx_workers,
        default="auto",
        metavar="N|auto",
        help="nginx's worker_processes in procs2, whose backends run several processes: auto "
        "(one per core, Debian's nginx.conf) or a number (1: the shape runs before used); "
        "every other cell runs nginx with one worker",
    )
    parser.add_argument("--mix-connections", type=int, default=64)
    parser.add_argument("--slow-fraction", type=float, default=0.1)
    parser.add_argument("--slow-ms", type=int, default=200)


def nginx_workers(text: str) -> str:
    """An nginx ``worker_processes`` value: ``auto`` or a count of at least one."""
    if text == "auto" or (text.isdigit() and int(text) >= 1):
        return text
    raise argparse.ArgumentTypeError(f"{text!r}: auto or a number of workers, 1 or more")


def chosen(text: str) -> list[str]:
    if text == "all":
        return list(SCENARIOS)
    if text == "none":
        return []
    names = [name.strip() for name in text.split(",") if name.strip()]
    unknown = [name for name in names if name not in SCENARIOS]
    if unknown:
        raise SystemExit(f"--scenarios: unknown {unknown}; pick from all, none, {SCENARIOS}")
    return names
