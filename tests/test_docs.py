"""The documentation builds without warnings, and every example in it runs and says what it shows.

``docs/middleware`` has its own tests (tests/middleware/test_docs.py); this file covers the rest:
the Python examples in ``docs/examples`` (imported, or run as the web server would run them),
the ``fcgikit`` command lines in console blocks (parsed by the real parser; ``fcgikit config``
lines rendered), the outputs the pages print next to commands, the doctests, and the three
Sphinx extensions in ``docs/_ext``.
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import json
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml
from werkzeug.test import Client

from fcgikit.addresses import UnixAddress
from fcgikit.cli import _build_parser, main
from fcgikit.client import FastCGIClient
from fcgikit.deploy import SERVERS, recommended_fixer, render
from fcgikit.deploy.command import config_text
from fcgikit.errors import ConfigError
from fcgikit.server.keeper import KILL_MARGIN
from fcgikit.server.settings import SERVE_SETTINGS
from fcgikit.server.settings.declaration import settings_of
from fcgikit.server.settings.sources import resolve
from tests.processes import ROOT, Backend

DOCS = ROOT / "docs"
EXAMPLES = DOCS / "examples"
#: The pages this file is about (docs/middleware is tested in tests/middleware/test_docs.py).
PAGES = sorted(
    page for page in DOCS.rglob("*.rst") if "middleware" not in page.relative_to(DOCS).parts
)
EXAMPLE_FILES = sorted(
    path
    for path in EXAMPLES.rglob("*")
    if path.suffix in (".py", ".fcgi", ".toml") and path.is_file()
)

sys.path.insert(0, str(DOCS / "_ext"))
fcgikit_cli = importlib.import_module("fcgikit_cli")
fcgikit_compat = importlib.import_module("fcgikit_compat")
fcgikit_config = importlib.import_module("fcgikit_config")
fcgikit_settings = importlib.import_module("fcgikit_settings")


# --------------------------------------------------------------------------- helpers


def page_text(name: str) -> str:
    return (DOCS / name).read_text()


def literal_blocks(text: str, language: str) -> list[str]:
    """The bodies of ``.. code-block:: LANGUAGE`` directives, dedented."""
    blocks = []
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip() != f".. code-block:: {language}":
            continue
        indent = len(line) - len(line.lstrip())
        body: list[str] = []
        for following in lines[i + 1 :]:
            if following.strip() and len(following) - len(following.lstrip()) <= indent:
                break
            body.append(following)
        while body and not body[0].strip():
            body.pop(0)
        while body and not body[-1].strip():
            body.pop()
        width = min(len(b) - len(b.lstrip()) for b in body if b.strip())
        blocks.append("\n".join(b[width:] for b in body))
    return blocks


def console_commands(text: str) -> list[tuple[str, str]]:
    """(command, the output shown under it) for every ``$`` line in the page's console blocks."""
    found = []
    for block in literal_blocks(text, "console"):
        command = None
        output: list[str] = []
        for line in [*block.splitlines(), "$ "]:
            if line.startswith("$ "):
                if command:
                    found.append((command, "\n".join(output)))
                command, output = line[2:], []
            else:
                output.append(line)
    return found


def fcgikit_argv(command: str) -> list[str] | None:
    """The arguments after ``fcgikit`` in a documented shell line, or None if it is not one."""
    words = shlex.split(command.split("&&")[-1])
    if words[:1] == ["sudo"]:
        words = words[1:]
    while words and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[0]):  # VARIABLE=value fcgikit
        words = words[1:]
    if words and (words[0] == "fcgikit" or words[0].endswith("/fcgikit")):
        return words[1:]
    return None


@contextlib.contextmanager
def examples_on_path(directory: Path = EXAMPLES) -> Iterator[None]:
    """Import the docs' example modules by their own names, then forget them again."""
    names = ("yourapplication", "factory")
    saved = {name: sys.modules.pop(name) for name in names if name in sys.modules}
    sys.path.insert(0, str(directory))
    try:
        yield
    finally:
        sys.path.remove(str(directory))
        for name in names:
            sys.modules.pop(name, None)
        sys.modules.update(saved)


def import_example(name: str) -> ModuleType:
    return importlib.import_module(name)


@contextlib.contextmanager
def fd0_listener(tmp_path: Path) -> Iterator[tuple[socket.socket, str]]:
    """A listening unix socket to hand a child on fd 0, as mod_fcgid and lighttpd do."""
    path = str(tmp_path / "spawned.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen()
    try:
        yield listener, path
    finally:
        listener.close()


def fcgikit_in_examples(*argv: str) -> Backend:
    """``fcgikit ARGV --chdir docs/examples``, as a process."""
    return Backend(
        [sys.executable, "-m", "fcgikit", *argv, "--chdir", str(EXAMPLES)],
        env={"PYTHONDONTWRITEBYTECODE": "1"},
    )


def run_fcgi_on_fd0(fcgi: Path, tmp_path: Path) -> tuple[Backend, str]:
    with fd0_listener(tmp_path) as (listener, path):
        backend = Backend([sys.executable, str(fcgi)], stdin=listener, cwd=tmp_path)
    backend.wait_for(r"listening on unix:")
    return backend, f"unix:{path}"


# --------------------------------------------------------------------------- the build


def sphinx_dirs(tmp_path: Path) -> list[str]:
    return [str(DOCS), str(tmp_path / "html")]


@pytest.fixture(scope="module")
def built_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The docs built as CI builds them: warnings are errors, every reference must resolve."""
    out = tmp_path_factory.mktemp("html")
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "-n", "--keep-going", "-q", "-b", "html", DOCS, out],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr + result.stdout
    return out


def test_sphinx_build_has_no_warnings(built_html: Path) -> None:
    html = (built_html / "deploy" / "nginx.html").read_text()
    assert "fastcgi_pass" in html and "/run/yourapplication/fcgi.sock" in html
    assert (built_html / "compatibility.html").exists()


#: The modules whose ``__all__`` is public API, and fcgikit.errors, which has none.
PUBLIC_MODULES = [
    "fcgikit",
    "fcgikit.middleware",
    "fcgikit.server",
    "fcgikit.client",
    "fcgikit.testing",
    "fcgikit.quirks",
    "fcgikit.deploy",
    "fcgikit.networks",
    "fcgikit.errors",
]


def public_names(module_name: str) -> list[str]:
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n, v in vars(module).items() if getattr(v, "__module__", "") == module_name]
    return [n for n in names if not n.startswith("_")]


@pytest.mark.parametrize("module", PUBLIC_MODULES)
def test_the_api_reference_documents_every_public_name(built_html: Path, module: str) -> None:
    documented = set(re.findall(r'id="(fcgikit\.[\w.]+)"', (built_html / "api.html").read_text()))
    # a name fcgikit re-exports counts where its home module documents it
    missing = [
        name
        for name in public_names(module)
        if f"{module}.{name}" not in documented
        and not any(target.endswith(f".{name}") for target in documented)
    ]
    assert not missing, f"docs/api.rst does not document {module}: {missing}"


def test_every_example_file_is_shown_on_a_page() -> None:
    included = set()
    for page in PAGES:
        for target in re.findall(r"literalinclude:: (\S+)", page.read_text()):
            included.add((page.parent / target).resolve())
    assert included, "no literalinclude found"
    missing = [str(p.relative_to(DOCS)) for p in EXAMPLE_FILES if p.resolve() not in included]
    assert not missing, f"examples no page shows: {missing}"


@pytest.mark.parametrize(
    "page", [p for p in PAGES if ">>> " in p.read_text()], ids=lambda p: p.stem
)
def test_doctests_in_pages(page: Path) -> None:
    result = doctest.testfile(str(page), module_relative=False, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --------------------------------------------------------------------------- the examples


def test_the_app_builds_links_under_its_mount() -> None:
    with examples_on_path():
        app = import_example("yourapplication").app
    client = Client(app)
    # What the nginx config of the quickstart sends for GET /yourapplication/:
    nginx = {"SCRIPT_NAME": "/yourapplication", "PATH_INFO": "/", "HTTP_HOST": "localhost"}
    text = client.get("/", environ_overrides=nginx).text
    [(command, shown)] = [
        (c, o) for c, o in console_commands(page_text("quickstart.rst")) if c.startswith("curl")
    ]
    assert command == "curl http://localhost/yourapplication/"
    assert text.rstrip("\n") == shown
    assert client.get("/hello/World").text == "Hello, World!\n"
    response = client.get("/home", environ_overrides={**nginx, "PATH_INFO": "/home"})
    assert response.status_code == 302
    assert response.headers["Location"] == "/yourapplication/"


def test_importing_the_app_starts_no_server(monkeypatch: pytest.MonkeyPatch) -> None:
    import flask

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("app.run() called at import")

    monkeypatch.setattr(flask.Flask, "run", refuse)
    with examples_on_path():
        module = import_example("yourapplication")
    assert Path(module.app.config["DATA_DIR"]).is_absolute()


@pytest.mark.parametrize(
    "name", ["yourapplication.fcgi", "yourapplication_socket.fcgi", "shared_host.fcgi"]
)
def test_fcgi_files_are_ready_to_be_executed(name: str) -> None:
    path = EXAMPLES / name
    data = path.read_bytes()
    assert data.startswith(b"#!/"), "a .fcgi file needs a shebang with an absolute path"
    assert b"\r\n" not in data, "CRLF line endings break the shebang"
    assert path.stat().st_mode & stat.S_IXUSR, f"chmod +x docs/examples/{name}"


def test_fcgi_file_serves_the_socket_on_fd0(tmp_path: Path) -> None:
    backend, address = run_fcgi_on_fd0(EXAMPLES / "yourapplication.fcgi", tmp_path)
    try:
        response = FastCGIClient(address).request("GET", "/hello/World")
        assert response.status == 200
        assert response.body == b"Hello, World!\n"
    finally:
        assert backend.stop(signal.SIGTERM) == 0


def test_fcgi_file_run_by_hand_answers_as_cgi() -> None:
    """The quickstart's and the troubleshooting page's "run it by hand" lines, and their output."""
    [(command, shown)] = [
        (c, o)
        for c, o in console_commands(page_text("quickstart.rst"))
        if "yourapplication.fcgi </dev/null" in c
    ]
    env_words = [w for w in shlex.split(command) if "=" in w]
    result = subprocess.run(
        [sys.executable, str(EXAMPLES / "yourapplication.fcgi")],
        env={"PATH": "/usr/bin:/bin", **dict(w.split("=", 1) for w in env_words)},
        stdin=subprocess.DEVNULL,
        capture_output=True,
        timeout=60,
        cwd="/",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().replace("\r\n", "\n").rstrip("\n") == shown
    # The troubleshooting page runs the same file the same way, with an emptied environment.
    [(by_hand, _)] = [
        (c, o)
        for c, o in console_commands(page_text("troubleshooting.rst"))
        if c.startswith("sudo -u www-data env -i")
    ]
    assert set(env_words) <= set(shlex.split(by_hand))


def test_socket_fcgi_creates_a_group_writable_socket(tmp_path: Path) -> None:
    source = (EXAMPLES / "yourapplication_socket.fcgi").read_text()
    documented = "/run/yourapplication/fcgi.sock"
    assert documented in source
    sock = tmp_path / "fcgi.sock"
    fcgi = tmp_path / "yourapplication_socket.fcgi"
    fcgi.write_text(source.replace(documented, str(sock)))
    shutil.copy(EXAMPLES / "yourapplication.py", tmp_path)
    backend = Backend([sys.executable, str(fcgi)], env={"PYTHONDONTWRITEBYTECODE": "1"})
    try:
        backend.wait_for(rf"listening on unix:{re.escape(str(sock))}")
        assert stat.S_IMODE(sock.stat().st_mode) == 0o660
        assert FastCGIClient(f"unix:{sock}").request("GET", "/hello/x").body == b"Hello, x!\n"
    finally:
        assert backend.stop() == 0


def test_shared_host_fcgi_undoes_the_htaccess_rewrite(tmp_path: Path) -> None:
    source = (EXAMPLES / "shared_host.fcgi").read_text()
    fixer = recommended_fixer("apache-htaccess")
    assert fixer is not None
    assert f"app = {fixer.name}(app, {fixer.mount!r})".replace("'", '"') in source
    # The page's second example: the same file in a subdirectory takes the directory.
    blog = recommended_fixer("apache-htaccess", mount="/blog")
    assert blog is not None
    assert f'{blog.name}(app, "{blog.mount}")' in page_text("deploy/apache-fcgid.rst")

    backend, address = run_fcgi_on_fd0(EXAMPLES / "shared_host.fcgi", tmp_path)
    try:
        # What Apache sends after RewriteRule ^(.*)$ yourapplication.fcgi/$1 at the docroot:
        apache: dict[str | bytes, str | bytes] = {
            "SCRIPT_NAME": "/yourapplication.fcgi",
            "PATH_INFO": "/",
            "REQUEST_URI": "/",
            "SCRIPT_FILENAME": "/home/you/public_html/yourapplication.fcgi",
            "SERVER_SOFTWARE": "Apache/2.4.71 (Debian)",
        }
        response = FastCGIClient(address).request(
            "GET", "/", params=apache, headers={"Host": "example.com"}
        )
        assert response.body == (
            b"mounted at /, asked for /\na link: http://example.com/hello/World\n"
        )
    finally:
        assert backend.stop() == 0


@pytest.mark.parametrize(
    ("sent", "script_root"),
    [
        pytest.param(
            # h2o under paths: "/yourapplication": nothing split off
            {
                "SCRIPT_NAME": "",
                "PATH_INFO": "/yourapplication/",
                "REQUEST_URI": "/yourapplication/",
            },
            "/yourapplication",
            id="h2o-prefix",
        ),
        pytest.param(
            # Caddy handle_path /yourapplication/*: the mount stripped
            {"SCRIPT_NAME": "", "PATH_INFO": "/", "REQUEST_URI": "/yourapplication/"},
            "/yourapplication",
            id="caddy-handle-path",
        ),
    ],
)
def test_factory_puts_the_app_back_at_its_mount(sent: dict[str, str], script_root: str) -> None:
    with examples_on_path():
        factory = import_example("factory")
    text = Client(factory.create_app("/yourapplication")).get("/", environ_overrides=sent).text
    assert text == f"mounted at {script_root}, this page is {script_root}/\n"
    plain = Client(factory.create_app()).get("/").text
    assert plain == "mounted at /, this page is /\n"


@pytest.mark.parametrize(
    ("marker", "expected"),
    [
        pytest.param(
            "factory:create_app",
            b"mounted at /yourapplication, this page is /yourapplication/\n",
            id="factory",
        ),
        pytest.param(
            "--mount /yourapplication",
            b"mounted at /yourapplication, asked for /\n"
            b"a link: http://localhost/yourapplication/hello/World\n",
            id="mount-option",
        ),
    ],
)
def test_fcgikit_serve_line_from_the_docs_runs(
    marker: str, expected: bytes, tmp_path: Path
) -> None:
    """The h2o page's ``fcgikit serve`` lines, on a socket of our own, behind what h2o sends."""
    [command] = [c for c, _ in console_commands(page_text("deploy/h2o.rst")) if marker in c]
    argv = fcgikit_argv(command)
    assert argv is not None
    sock = tmp_path / "app.sock"
    argv[argv.index("--bind") + 1] = f"unix:{sock}"
    backend = fcgikit_in_examples(*argv)
    try:
        backend.wait_for(r"listening on unix:")
        # h2o under paths: "/yourapplication" splits nothing off: SCRIPT_NAME "", the whole
        # path as PATH_INFO (the client's defaults), REQUEST_URI as asked.
        response = FastCGIClient(f"unix:{sock}").request(
            "GET", "/yourapplication/", headers={"Host": "localhost"}
        )
        assert response.body == expected
    finally:
        assert backend.stop() == 0


def test_check_output_shown_in_troubleshooting(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from fcgikit.check import check

    for source in (EXAMPLES / "broken").iterdir():
        shutil.copy(source, tmp_path)
    monkeypatch.chdir(tmp_path)
    out = io.StringIO()
    result = check("yourapplication:app", out=out)
    assert not result.ok
    actual = out.getvalue().replace(str(tmp_path), "/var/www/yourapplication")
    [sample] = [
        b
        for b in literal_blocks(page_text("troubleshooting.rst"), "text")
        if b.startswith("fcgikit check:")
    ]
    tail = sample[sample.index("Problems:") :]
    assert tail in actual.replace("\r\n", "\n"), actual


# --------------------------------------------------------------------------- Kubernetes

K8S = DOCS / "deploy" / "k8s"
K8S_SOCKET = "/run/yourapplication/fcgi.sock"


def k8s_documents() -> list[tuple[str, dict[str, object]]]:
    return [
        (path.name, document)
        for path in sorted(K8S.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
    ]


def k8s_object(kind: str) -> dict[str, Any]:
    [found] = [doc for _, doc in k8s_documents() if doc["kind"] == kind]
    return found


@pytest.mark.parametrize(
    ("name", "document"), k8s_documents(), ids=lambda value: value if isinstance(value, str) else ""
)
def test_kubernetes_manifest_is_valid(name: str, document: dict[str, object]) -> None:
    """Against the API schemas of the newest Kubernetes the validator knows, no field unknown."""
    version = kubernetes_validate.latest_version()
    try:
        kubernetes_validate.validate(document, version, strict=True)
    except kubernetes_validate.ValidationError as error:
        pytest.fail(f"docs/deploy/k8s/{name} is not a valid {document['kind']}: {error.message}")


def test_kubernetes_manifests_are_shown_on_the_scale_out_page() -> None:
    page = page_text("deploy/scale-out.rst")
    for path in K8S.glob("*.yaml"):
        assert f".. literalinclude:: k8s/{path.name}" in page


def test_kubernetes_nginx_location_is_what_fcgikit_config_prints() -> None:
    conf = k8s_object("ConfigMap")["data"]["default.conf"]
    rendered = render("nginx", mount="/yourapplication", socket=f"unix:{K8S_SOCKET}")
    body = "\n".join(line.removeprefix("    ") for line in conf.splitlines())
    assert rendered in body, (
        "docs/deploy/k8s/configmap.yaml: paste the output of `fcgikit config nginx --mount "
        f"/yourapplication --socket unix:{K8S_SOCKET}` into its server block again"
    )


def test_kubernetes_pod_serves_and_probes_the_shared_socket() -> None:
    pod = k8s_object("Deployment")["spec"]["template"]["spec"]
    containers = {c["name"]: c for c in pod["containers"]}
    app, nginx = containers["app"], containers["nginx"]
    parser = _build_parser()
    args = parser.parse_args(app["command"][1:])
    serve = resolve(SERVE_SETTINGS, args, {})
    assert serve["binds"] == (UnixAddress(K8S_SOCKET),)
    # the readiness probe asks fcgikit's ping path, which answers 503 while it drains
    probe = parser.parse_args(app["readinessProbe"]["exec"]["command"][1:])
    assert (probe.command, probe.address, probe.fail) == ("request", f"unix:{K8S_SOCKET}", True)
    assert probe.path == serve["ping_path"]
    # both containers mount the one emptyDir where the socket is
    [volume] = [v for v in pod["volumes"] if "emptyDir" in v]
    for container in (app, nginx):
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        assert mounts[volume["name"]] == os.path.dirname(K8S_SOCKET)
    # fcgikit drains itself after SIGTERM (no preStop sleep): it accepts for longer than nginx
    # does, and is done (its requests finished) before the grace period's SIGKILL
    assert "lifecycle" not in app
    nginx_stop = nginx["lifecycle"]["preStop"]["exec"]["command"][-1]
    nginx_sleep = int(re.match(r"sleep (\d+) && nginx -s quit$", nginx_stop).group(1))  # type: ignore[union-attr]
    assert nginx_sleep < serve["shutdown_delay"]
    stop = serve["shutdown_delay"] + serve["graceful_timeout"]
    if serve["workers"] is not None:
        stop += KILL_MARGIN
    assert stop < pod.get("terminationGracePeriodSeconds", 30) <= 30


# --------------------------------------------------------------------------- command lines


DOCUMENTED_COMMANDS = sorted(
    {
        (page.relative_to(DOCS).as_posix(), command)
        for page in PAGES
        for command, _ in console_commands(page.read_text())
        if fcgikit_argv(command) is not None
    }
)


@pytest.mark.parametrize(("page", "command"), DOCUMENTED_COMMANDS)
def test_documented_fcgikit_command_is_valid(page: str, command: str) -> None:
    argv = fcgikit_argv(command)
    assert argv is not None
    parser = _build_parser()
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            args = parser.parse_args(argv)
        except SystemExit:
            pytest.fail(f"{page}: `fcgikit {shlex.join(argv)}` is refused:\n{stderr.getvalue()}")
    if args.command == "config":
        assert config_text(args)


def test_the_example_config_file_prints_what_the_page_shows(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/examples/fcgikit.toml is read without a complaint, and ``--print-config`` shows
    the lines operations.rst says it does (``...`` stands for the lines left out)."""
    [(command, shown)] = [
        (c, o) for c, o in console_commands(page_text("operations.rst")) if "--print-config" in c
    ]
    deployed = "/etc/yourapplication/fcgikit.toml"
    example = str(EXAMPLES / "fcgikit.toml")
    words = shlex.split(command)
    for word in words[: words.index("fcgikit")]:
        name, _, value = word.partition("=")
        monkeypatch.setenv(name, value)
    argv = fcgikit_argv(command)
    assert argv is not None
    assert main([example if word == deployed else word for word in argv]) == 0
    printed = capsys.readouterr().out.replace(example, deployed)
    columns = {" ".join(line.split()) for line in printed.splitlines()}  # not the padding
    for line in shown.splitlines():
        if line != "...":
            assert " ".join(line.split()) in columns, printed


def test_every_subcommand_has_a_reference_section() -> None:
    operations = page_text("operations.rst")
    for name in fcgikit_cli.subcommands(_build_parser()):
        assert f".. fcgikit-cli:: {name}" in operations, f"operations.rst lacks fcgikit {name}"


def test_every_server_has_a_deployment_page_with_its_config() -> None:
    shown = {
        line.split("::", 1)[1].split()[0]
        for page in (DOCS / "deploy").glob("*.rst")
        for line in page.read_text().splitlines()
        if line.startswith(".. fcgikit-config::")
    }
    assert shown == set(SERVERS)
    for page in (DOCS / "deploy").glob("*.rst"):
        if page.stem != "index":
            assert ".. fcgikit-config::" in page.read_text(), f"{page.name} shows no config"


# --------------------------------------------------------------------------- the extensions


def test_config_directive_renders_what_the_command_prints() -> None:
    argv, text = fcgikit_config.config_command("nginx --mount /yourapplication --port 9000")
    assert argv == ["config", "nginx", "--mount", "/yourapplication", "--port", "9000"]
    assert text == render("nginx", mount="/yourapplication", port=9000)
    result = subprocess.run(
        [sys.executable, "-m", "fcgikit", *argv], capture_output=True, text=True, timeout=60
    )
    assert result.stdout == text + "\n"


@pytest.mark.parametrize(
    "argument",
    [
        "nginx --bogus",
        "nginx --socket relative.sock",
        "apache-fcgid --socket unix:/x.sock",
        "gopher",
    ],
)
def test_config_directive_refuses_what_the_command_refuses(argument: str) -> None:
    with pytest.raises(ConfigError):
        fcgikit_config.config_command(argument)


def test_cli_reference_lists_every_option() -> None:
    for name, parser in fcgikit_cli.subcommands(_build_parser()).items():
        text = "\n".join(fcgikit_cli.option_lines(parser))
        for action in parser._actions:
            for option in action.option_strings:
                if option not in ("-h", "--help"):
                    assert option in text, f"fcgikit {name} {option}"
    assert fcgikit_cli.escape("a_ *b* `c`") == r"a\_ \*b\* \`c\`"


def test_settings_table_has_every_setting_with_its_names() -> None:
    assert ".. fcgikit-settings::" in page_text("operations.rst")
    text = "\n".join(fcgikit_settings.table_lines())
    for declared in (d for cls in SERVE_SETTINGS for d in settings_of(cls)):
        assert f"<fcgikit serve {declared.flag}>" in text
        assert f"``{declared.env}``" in text and f"``{declared.name}``" in text
    assert "``FCGI_WEB_SERVER_ADDRS``" in text


def test_compatibility_snapshot_renders() -> None:
    data = fcgikit_compat.load(fcgikit_compat.SNAPSHOT)
    rows = fcgikit_compat.rows(data["scenarios"].values())
    assert len(rows) == len(data["scenarios"]) > 0
    assert all(len(row) == len(fcgikit_compat.HEADERS) for row in rows)


@pytest.mark.parametrize(
    ("spec", "text"),
    [
        (None, "none"),
        ("none", "none"),
        ("LighttpdRootFix", "LighttpdRootFix(app)"),
        ("MountFix:", "MountFix(app, '')"),
        ("MountFix:/x", "MountFix(app, '/x')"),
    ],
)
def test_compatibility_fixer_column(spec: str | None, text: str) -> None:
    assert fcgikit_compat.fixer_text(spec) == text


def test_compatibility_outcome_column() -> None:
    entry = {"checks": {"test_a": "passed", "test_b[x]": "failed", "test_c": "skipped"}}
    assert fcgikit_compat.outcome_text(entry) == "1 of 2 checks fail: b[x]"
    assert fcgikit_compat.outcome_text({"checks": {"test_a": "passed"}}) == "the 1 check passes"
    assert fcgikit_compat.outcome_text({"checks": {"t": "skipped"}}).startswith("not run")
    assert os.fspath(fcgikit_compat.results_path()).endswith(".json")


def test_flup_page_lists_every_wsgiserver_keyword() -> None:
    import inspect

    from fcgikit import compat

    text = page_text("flup.rst")
    table = text[text.index("flup keyword") : text.index("Any other keyword")]
    documented = set(re.findall(r"^``(\w+)``", table, re.MULTILINE))
    accepted = set(inspect.signature(compat.WSGIServer).parameters) - {"application", "kw"}
    assert documented == accepted | compat._FLUP_THREAD_KEYWORDS | compat._FLUP_PREFORK_KEYWORDS


def test_request_line_in_troubleshooting_prints_what_it_shows(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    [(command, shown)] = [
        (c, o)
        for c, o in console_commands(page_text("troubleshooting.rst"))
        if c.startswith("fcgikit request")
    ]
    argv = fcgikit_argv(command)
    assert argv is not None
    sock = tmp_path / "fcgi.sock"
    argv[1] = f"unix:{sock}"
    backend = fcgikit_in_examples("serve", "yourapplication:app", "--bind", f"unix:{sock}")
    try:
        backend.wait_for(r"listening on unix:")
        assert main(argv) == 0
    finally:
        assert backend.stop() == 0
    printed = capsysbinary.readouterr().out.decode("latin-1").replace("\r\n", "\n")
    assert printed.rstrip("\n") == shown


def test_check_with_a_servers_params_shows_the_fixer_at_work() -> None:
    """The two ``fcgikit check --server h2o`` lines of the troubleshooting page, run."""
    lines = [
        c
        for c, _ in console_commands(page_text("troubleshooting.rst"))
        if c.startswith("fcgikit check") and "--server" in c
    ]
    outputs = []
    for line in lines:
        argv = fcgikit_argv(line)
        assert argv is not None
        result = subprocess.run(
            [sys.executable, "-m", "fcgikit", *argv],
            cwd=EXAMPLES,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
        )
        outputs.append(result.stdout)
    without, with_fixer = outputs
    assert "Status: 404 NOT FOUND" in without
    assert "Status: 200 OK" in with_fixer
    assert "mounted at /yourapplication" in with_fixer


def test_mod_fcgids_answer_over_its_body_limit_is_the_one_the_matrix_measured() -> None:
    matrix = json.loads((DOCS / "compatibility.json").read_text())["scenarios"]
    measured = {entry["body_limit"]["status"] for entry in matrix.values() if entry["body_limit"]}
    [status] = measured  # the htaccess scenarios keep Debian's stock FcgidMaxRequestLen
    for page in ("deploy/apache-fcgid.rst", "troubleshooting.rst"):
        paragraphs = [p for p in page_text(page).split("\n\n") if "FcgidMaxRequestLen" in p]
        assert paragraphs, page
        for paragraph in paragraphs:
            assert set(re.findall(r"\b[45]\d\d\b", paragraph)) == {str(status)}, paragraph
