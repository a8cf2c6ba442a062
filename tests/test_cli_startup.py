"""What ``fcgikit serve`` does before it serves. Every start and every SIGHUP re-exec pays for
each module it imports, so what only another command or option needs is imported by that one;
and it listens before it imports the app, so that the web server's requests wait for the app
instead of being refused."""

from __future__ import annotations

import gc
import json
import os
from collections.abc import Iterable
from pathlib import Path

import pytest

from fcgikit.client import FastCGIClient, connect
from fcgikit.protocol import ClientConnection, RequestEnded, StdoutData
from fcgikit.server import memory
from tests.processes import ROOT, Backend, fcgikit_command

ENV = {"PYTHONPATH": f"{ROOT}{os.pathsep}{ROOT / 'tests'}"}

#: what only the other commands (check, request, status, config: their parsers too) or the
#: options that ask for it (--workers, --reload, --mount and the proxy options, --status-path,
#: --log-config, --http) use, and the standard library and werkzeug modules that only they
#: bring in; the serving process is started with an ordinary command line
NOT_FOR_ONE_PROCESS = (
    # the check and request commands, their options included
    "fcgikit.check",
    "fcgikit.client",
    "fcgikit.deploy",
    "fcgikit.middleware",
    "fcgikit.quirks",
    "fcgikit.testing",
    "fcgikit.server.arbiter",
    "fcgikit.server.autoreload",
    "fcgikit.server.children",
    "fcgikit.server.scoreboard",
    "fcgikit.server.sources",
    "fcgikit.server.status",
    "fcgikit.server.worker",
    # the status page's counters (--status-path, a pool's workers) and --ping-path's answerer
    "fcgikit.server.metrics",
    "fcgikit.server.health",
    # --help and a command line other than the ordinary one (long options written out
    # whole) are argparse's; this one is read without it
    "argparse",
    # the SIGHUP re-exec's, to move the listeners' descriptors: a C module nothing else loads
    "fcntl",
    # the pool's and the SIGHUP re-exec's: it makes enums of every signal number at import;
    # one process handles its signals with _signal's functions and numbers
    "signal",
    # the rare paths': a misspelt setting's suggestion, the debug error page, a request body
    # that outgrows memory, --http's socket directory
    "difflib",
    "html",
    "shutil",
    "tempfile",
    # a JSON access log's
    "json",
    "werkzeug",
    "configparser",
    "logging.config",
    "http.server",
    "email",
    "ssl",
)


def first_answer(tmp_path: Path, app: str, *options: str, env: dict[str, str] = ENV) -> bytes:
    """The body a ``fcgikit serve APP`` started with ``options`` answers to its first request
    (``/blog/``, which ``--mount /blog`` serves too), once it listens; then it stops."""
    sock = tmp_path / "app.sock"
    command = fcgikit_command("serve", app, "--bind", f"unix:{sock}", *options)
    backend = Backend(command, env=env)
    try:
        backend.wait_for("listening on")
        response = FastCGIClient(f"unix:{sock}").request("GET", "/blog/")
    finally:
        assert backend.stop() == 0
    assert response.status == 200
    return response.body


#: a sitecustomize (imported before anything of fcgikit, importing nothing itself) that notes
#: what imported each module: the Python frames running when the import system first looked
#: for it, innermost first, with the imports under way between them (``import tempfile``).
#: Compiled code has no frames: what a compiled function imports names the Python below it
#: and the thread. (A compiled module's import of another compiled with it bypasses the
#: finders: it is not noted.)
IMPORTERS_SITECUSTOMIZE = """
import sys

importers = {}


class NoteImporters:
    # first of the finders, finding nothing: each import the others then make is noted
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name in importers:
            return None
        steps = []
        frame = sys._getframe().f_back
        while frame is not None:
            code = frame.f_code
            if not code.co_filename.startswith("<frozen importlib"):
                steps.append(f"{code.co_filename}:{frame.f_lineno} {code.co_name}")
            elif code.co_name == "_find_and_load":
                steps.append(f"import {frame.f_locals.get('name')}")
            frame = frame.f_back
        threading = sys.modules.get("threading")
        thread = "" if threading is None else f" (thread {threading.current_thread().name})"
        importers[name] = " <- ".join(steps[1:]) + thread  # not its own _find_and_load
        return None


sys.meta_path.insert(0, NoteImporters)
"""


def modules_served(tmp_path: Path, *options: str) -> dict[str, str]:
    """The modules a ``fcgikit serve`` started with ``options`` has loaded once it serves,
    each with what imported it (IMPORTERS_SITECUSTOMIZE)."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(IMPORTERS_SITECUSTOMIZE)
    env = {"PYTHONPATH": f"{site}{os.pathsep}{ENV['PYTHONPATH']}"}
    lines = first_answer(tmp_path, "apps.hello:loaded_modules", *options, env=env).decode()
    return dict(line.partition("\t")[::2] for line in lines.split("\n"))


def loaded_of(modules: Iterable[str], names: tuple[str, ...]) -> list[str]:
    return sorted(m for m in modules if any(m == n or m.startswith(n + ".") for n in names))


def test_one_process_loads_nothing_only_other_commands_or_options_use(tmp_path: Path) -> None:
    modules = modules_served(tmp_path)
    assert "fcgikit.server.server" in modules  # it did report what it serves with
    unwanted = loaded_of(modules, NOT_FOR_ONE_PROCESS)
    # each with its importer: a failure says which code path loaded it
    assert {name: modules[name] for name in unwanted} == {}


def test_one_process_sets_malloc_without_ctypes_where_the_c_lane_is_built(tmp_path: Path) -> None:
    """ctypes, for one mallopt call, cost more than any other module fcgikit alone imports;
    the C lane (fcgikit/server/_speedups_memory.c) makes the call, and the pure-Python build
    (which refuses the lane) still tunes malloc through ctypes."""
    modules = modules_served(tmp_path)
    assert ("ctypes" in modules) is (memory._mallopt_c is None)


@pytest.mark.parametrize(
    ("options", "needed"),
    [
        pytest.param(("--mount", "/blog"), "fcgikit.middleware.mount_fix", id="mount"),
        pytest.param(
            ("--status-path", "/fcgikit-status"), "fcgikit.server.status", id="status-path"
        ),
        pytest.param(
            ("--status-path", "/fcgikit-status"), "fcgikit.server.metrics", id="status-counters"
        ),
        pytest.param(("--ping-path", "/ping"), "fcgikit.server.health", id="ping-path"),
    ],
)
def test_an_option_that_needs_a_module_loads_it(
    tmp_path: Path, options: tuple[str, ...], needed: str
) -> None:
    assert needed in modules_served(tmp_path, *options)


def test_a_request_sent_while_the_app_imports_is_answered_once_it_has(tmp_path: Path) -> None:
    sock = tmp_path / "app.sock"
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    command = fcgikit_command("serve", "apps.slow_import:app", "--bind", f"unix:{sock}")
    backend = Backend(command, env={**ENV, "APP_IMPORT_GATE": str(gate)})
    try:
        backend.wait_for("importing apps.slow_import")
        client = ClientConnection()
        # what nginx does at that moment; before, nothing listened yet: a 502
        with connect(f"unix:{sock}", timeout=30) as early:
            params = {b"REQUEST_METHOD": b"GET", b"PATH_INFO": b"/early"}
            early.sendall(client.start_request(1, params) + client.end_stdin(1))
            with open(gate, "w") as release:
                release.write("imported")
            stdout = b""
            ended = False
            while not ended:
                data = early.recv(65536)
                assert data, "the connection closed before the answer"
                for event in client.receive_data(data):
                    if isinstance(event, StdoutData):
                        stdout += event.data
                    ended = ended or isinstance(event, RequestEnded)
    finally:
        assert backend.stop() == 0
    assert stdout.endswith(b"hello from /early")


def test_a_request_sent_while_the_log_file_opens_is_answered_once_it_has(tmp_path: Path) -> None:
    # The socket listens as soon as the settings are read, before logging is set up (and its
    # module imported); a log file that cannot be opened yet (a FIFO nobody reads) holds the
    # start there. Before, nothing listened yet: a 502.
    sock = tmp_path / "app.sock"
    log_file = tmp_path / "fcgikit.log"
    os.mkfifo(log_file)
    command = fcgikit_command(
        "serve", "apps.hello:app", "--bind", f"unix:{sock}", "--log-file", str(log_file)
    )
    backend = Backend(command, env=ENV)
    try:
        # opened once fcgikit opens it to write its lines, which then go on
        with open(log_file) as lines:
            response = FastCGIClient(f"unix:{sock}").request("GET", "/early")
            assert "listening on" in lines.readline()
    finally:
        assert backend.stop() == 0
    assert response.status == 200


def test_the_app_imports_without_cyclic_collections_and_serves_with_them(tmp_path: Path) -> None:
    # A collection during the import walks every object made so far, and they all live as
    # long as the process (the server freezes them before it serves, as gunicorn does).
    seen = json.loads(first_answer(tmp_path, "apps.gc_import:app"))
    assert seen["collections_during_import"] == 0
    assert seen["enabled"] is True
    assert tuple(seen["threshold"]) == gc.get_threshold()  # the defaults, as before the import


#: a sitecustomize (Python imports it before anything of fcgikit) that counts the automatic
#: collections from the moment fcgikit's command line module begins to load
COUNTING_SITECUSTOMIZE = """
import gc
import sys

collections_since_cli = 0


def _count(phase, info):
    global collections_since_cli
    if phase == "start" and "fcgikit.cli" in sys.modules:
        collections_since_cli += 1


gc.callbacks.append(_count)
"""


def test_fcgikit_serve_imports_itself_without_cyclic_collections(tmp_path: Path) -> None:
    # fcgikit's own modules live as long as the process too: the same reason as the app's
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(COUNTING_SITECUSTOMIZE)
    env = {"PYTHONPATH": f"{site}{os.pathsep}{ENV['PYTHONPATH']}"}
    seen = json.loads(first_answer(tmp_path, "apps.gc_import:app", env=env))
    assert seen["collections_during_start"] == 0
    assert seen["enabled"] is True
    assert tuple(seen["threshold"]) == gc.get_threshold()


#: a sitecustomize that notes the modules loaded when the process binds its first socket
BIND_SITECUSTOMIZE = """
import sys

modules_at_bind = []


def _note(event, args):
    if event == "socket.bind" and not modules_at_bind:
        modules_at_bind.extend(sorted(sys.modules))


sys.addaudithook(_note)
"""

#: what serving needs but binding does not: logging (fcgikit's set-up of it follows the bind),
#: the app's loader, the server's and the connection's modules (the
#: compiled ones' init is most of fcgikit's own start), json (a JSON access log's), and
#: socket with selectors (its enums of the C module's constants: the listener is made with
#: _socket's)
LOADED_AFTER_THE_BIND = (
    "logging",
    "fcgikit.server.logs",
    "fcgikit.server.notify",
    "fcgikit.server.apploader",
    "fcgikit.server.server",
    "fcgikit.server.channel",
    "fcgikit.protocol.server_connection",
    "fcgikit.protocol.events",
    "json",
    "socket",
    "selectors",
)


def test_one_process_binds_before_it_loads_the_server(tmp_path: Path) -> None:
    # a web server's request that arrives while they load waits in the backlog; before,
    # nginx answered it 502
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(BIND_SITECUSTOMIZE)
    env = {"PYTHONPATH": f"{site}{os.pathsep}{ENV['PYTHONPATH']}"}
    at_bind = set(first_answer(tmp_path, "apps.hello:modules_at_bind", env=env).decode().split())
    assert "fcgikit.server.settings" in at_bind  # it did note the bind
    assert loaded_of(at_bind, LOADED_AFTER_THE_BIND) == []


#: an app that answers the ``sys.path`` it was imported with
PATH_APP = """
import json
import sys

seen = list(sys.path)


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(seen).encode()]
"""


def test_fcgikit_serve_asks_a_repeated_path_entry_once(tmp_path: Path) -> None:
    # Every import of a top-level module asks each entry before the one that has it: a
    # directory in PYTHONPATH twice (or also the current one, with ``python -m``) was asked
    # twice by each import of the start, fcgikit's and the app's.
    site = tmp_path / "site"
    site.mkdir()
    (site / "path_app.py").write_text(PATH_APP)
    env = {"PYTHONPATH": os.pathsep.join([str(site), ENV["PYTHONPATH"], str(site)])}
    seen = json.loads(first_answer(tmp_path, "path_app:app", env=env))
    assert str(site) in seen
    assert [entry for entry in seen if seen.count(entry) > 1] == []
