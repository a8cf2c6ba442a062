"""``fcgikit check``: the app run as a web server runs it, one request, and the diagnoses.

Each test writes a small ``.fcgi`` (or module) showing one of the Flask guide's failure causes
and asserts the diagnosis names the cause and the fix. The child really runs: its shebang's
interpreter, a listening socket on fd 0, ``PATH=/usr/bin:/bin``, cwd ``/``; nothing is mocked.
"""

from __future__ import annotations

import argparse
import io
import os
import pwd
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from fcgikit.check import CheckResult, add_check_parser, check, parse_tracebacks
from tests.processes import copy_pure_package

REPO_ROOT = Path(__file__).resolve().parents[2]
#: The interpreter running the tests, as its path says: in a virtual environment that path is
#: what finds the environment's packages (its real path is the bare base interpreter).
PYTHON = sys.executable
SYSTEM_PYTHON = "/usr/bin/python3"

HELLO = """\
import os, sys
sys.path.insert(0, {repo!r})
from fcgikit import WSGIServer

def app(environ, start_response):
    {view}
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello " + environ["PATH_INFO"].encode()]

if __name__ == "__main__":
    WSGIServer(app).run()
"""


def fcgi(
    directory: Path,
    body: str,
    *,
    shebang: str = PYTHON,
    name: str = "app.fcgi",
    mode: int = 0o755,
) -> Path:
    path = directory / name
    path.write_text(f"#!{shebang}\n{body}")
    path.chmod(mode)
    return path


def hello(view: str = "pass") -> str:
    return HELLO.format(repo=str(REPO_ROOT), view=view)


def run(target: str | Path, **kwargs: object) -> tuple[CheckResult, str]:
    out = io.StringIO()
    result = check(str(target), out=out, timeout=30, **kwargs)  # type: ignore[arg-type]
    return result, out.getvalue()


def titles(result: CheckResult) -> str:
    return "\n".join(problem.render() for problem in result.problems)


def test_good_fcgi(tmp_path: Path) -> None:
    result, text = run(fcgi(tmp_path, hello()), path="/news/1?x=1")
    assert result.ok, text
    assert result.status == 200
    assert "Status: 200 OK" in text
    assert "hello /news/1" in text
    assert "OK:" in text


def test_good_module_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "checkedapp.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('201 Created', [('X-Cwd', __import__('os').getcwd())])\n"
        "    return [b'made']\n"
    )
    monkeypatch.chdir(tmp_path)
    result, text = run("checkedapp:app", path="/")
    assert result.ok, text
    assert result.status == 201
    assert "X-Cwd: /" in text  # the app runs from /, as under a web server


def test_request_with_a_servers_params(tmp_path: Path) -> None:
    result, text = run(fcgi(tmp_path, hello()), path="/a/b", server="lighttpd")
    assert result.ok, text
    assert "hello /b" in text  # lighttpd at the root splits /a/b into /a + /b


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="no /usr/bin/python3")
def test_other_interpreter_shows_where_the_module_is(tmp_path: Path) -> None:
    # webtest is installed for the interpreter running the tests, not for Debian's python3
    target = fcgi(tmp_path, "import webtest\n", shebang=SYSTEM_PYTHON)
    result, text = run(target)
    assert not result.ok
    report = titles(result)
    assert "cannot import 'webtest'" in report, text
    assert f"shebang:        #!{SYSTEM_PYTHON}" in report
    assert f"sys.executable: {SYSTEM_PYTHON}" in report
    assert "sys.path:" in report
    assert "'webtest' is installed for" in report
    assert "site-packages/webtest/__init__.py" in report
    assert "make the shebang #!" in report


def test_local_module_not_on_sys_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    project = tmp_path / "project"
    (project / "www").mkdir(parents=True)
    (project / "yourapplication.py").write_text("app = None\n")
    target = fcgi(project / "www", "from yourapplication import app\n")
    monkeypatch.chdir(project)
    result, _ = run(target)
    report = titles(result)
    assert f"It is at {project / 'yourapplication.py'}" in report
    assert f"sys.path.insert(0, {str(project)!r})" in report


def test_relative_path(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{}")
    target = fcgi(tmp_path, "settings = open('config.json').read()\n" + hello())
    result, text = run(target)
    assert not result.ok
    report = titles(result)
    assert "relative path 'config.json'" in report, text
    assert f"It exists at {tmp_path / 'config.json'}" in report
    assert "os.path.dirname(os.path.abspath(__file__))" in report
    assert "FileNotFoundError" in text  # the traceback is shown too


def test_environment_variable_at_import(tmp_path: Path) -> None:
    target = fcgi(tmp_path, "import os\nSECRET = os.environ['FCGIKIT_TEST_SECRET']\n" + hello())
    result, text = run(target)
    report = titles(result)
    assert "os.environ['FCGIKIT_TEST_SECRET']" in report, text
    assert "which the web server does not set" in report
    assert "FcgidInitialEnv FCGIKIT_TEST_SECRET" in report
    assert '"bin-environment"' in report
    fixed, text = run(target, env=["FCGIKIT_TEST_SECRET=x"])
    assert fixed.ok, text


def test_environment_variable_in_a_request(tmp_path: Path) -> None:
    target = fcgi(tmp_path, hello(view="os.environ['FCGIKIT_TEST_TOKEN']"))
    result, text = run(target, path="/x")
    assert result.status == 500
    assert not result.ok
    assert "os.environ['FCGIKIT_TEST_TOKEN']" in titles(result), text


def test_app_run_at_import(tmp_path: Path) -> None:
    target = fcgi(tmp_path, "from flask import Flask\napp = Flask(__name__)\napp.run(port=59999)\n")
    result, text = run(target)
    report = titles(result)
    assert "starts a development server at import time" in report, text
    assert f"{target}, line 4: app.run(port=59999)" in report
    assert "if __name__ == '__main__':" in report


def test_app_run_at_import_in_module_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # imported through our app loader, which must not be mistaken for our own server binding
    (tmp_path / "runsatimport.py").write_text(
        "from flask import Flask\napp = Flask(__name__)\napp.run(port=59998)\n"
    )
    monkeypatch.chdir(tmp_path)
    result, text = run("runsatimport:app")
    report = titles(result)
    assert "starts a development server at import time" in report, text
    assert "line 3: app.run(port=59998)" in report
    assert "bindAddress" not in report


def test_crlf_and_not_executable(tmp_path: Path) -> None:
    target = tmp_path / "app.fcgi"
    target.write_bytes(f"#!{PYTHON}\n{hello()}".replace("\n", "\r\n").encode())
    target.chmod(0o644)
    result, text = run(target)
    report = titles(result)
    assert "CRLF" in report
    assert f"chmod +x {target}" in report
    assert result.status == 200, text  # the rest still runs, so later problems show too
    assert not result.ok


def test_shebang_interpreter_missing(tmp_path: Path) -> None:
    result, text = run(fcgi(tmp_path, hello(), shebang="/usr/bin/python-nonexistent"))
    assert "names /usr/bin/python-nonexistent, which does not exist" in titles(result), text
    assert result.status is None


def test_env_shebang_uses_the_servers_path(tmp_path: Path) -> None:
    result, _ = run(fcgi(tmp_path, hello(), shebang="/usr/bin/env fcgikit-no-such-python"))
    assert "finds no fcgikit-no-such-python on the web server's PATH" in titles(result)


def test_exits_without_serving(tmp_path: Path) -> None:
    result, text = run(fcgi(tmp_path, "app = None\n"))
    assert "exited (status 0) without answering" in titles(result), text


def test_no_answer_in_time(tmp_path: Path) -> None:
    target = fcgi(tmp_path, "import time\ntime.sleep(60)\n")
    out = io.StringIO()
    result = check(str(target), out=out, timeout=1)
    assert "no answer within 1 s" in titles(result), out.getvalue()


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory www-data can read (pytest's tmp dirs are 0700 root)."""
    directory = Path(tempfile.mkdtemp(prefix="fcgikit-check-test-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory)


def _require_root_and_www_data() -> None:
    if os.getuid() != 0:
        pytest.skip("--user needs root")
    try:
        pwd.getpwnam("www-data")
    except KeyError:
        pytest.skip("no www-data user")


@pytest.mark.skipif(not os.path.exists(SYSTEM_PYTHON), reason="no /usr/bin/python3")
def test_as_www_data(shared_dir: Path) -> None:
    _require_root_and_www_data()
    # www-data cannot reach this interpreter (under /root), nor a checkout in a 0700 temp
    # dir: give Debian's python3 fcgikit and its dependencies in a directory it can read,
    # as a deployment would
    for package in ("fcgikit", "werkzeug", "markupsafe"):
        copy_pure_package(package, shared_dir / "lib")
    view = "assert os.getuid() != 0 and 'HOME' not in os.environ, dict(os.environ)"
    body = f"import sys\nsys.path.insert(0, {str(shared_dir / 'lib')!r})\n" + hello(view=view)
    target = fcgi(shared_dir, body, shebang=SYSTEM_PYTHON)
    result, text = run(target, user="www-data", path="/who")
    assert result.ok, text
    assert "as www-data in /" in text


def test_as_www_data_without_read_access(tmp_path: Path) -> None:
    _require_root_and_www_data()
    target = fcgi(tmp_path, hello())  # under pytest's 0700 tmp dir, and a /root interpreter
    result, text = run(target, user="www-data")
    assert not result.ok
    report = titles(result)
    assert "cannot reach" in report, text
    assert f"may not enter {tmp_path.parent.parent.parent}" in report  # /tmp/pytest-of-root


def test_a_4xx_for_the_requested_path_fails(tmp_path: Path) -> None:
    view = 'start_response("404 NOT FOUND", []); return [b"no such page"]'
    result, text = run(fcgi(tmp_path, hello(view=view)), path="/no/such/page")
    assert result.status == 404
    assert not result.ok
    assert "the app answered 404 NOT FOUND for the path asked" in titles(result), text
    assert "--server NAME" in titles(result)
    assert "FAILED:" in text and "OK:" not in text


LINK_TO_SCRIPT = """\
    if environ["PATH_INFO"] == "/away":
        start_response("302 Found", [("Location", environ["SCRIPT_NAME"] + "/login")])
        return [b""]
    start_response("200 OK", [("Content-Type", "text/html")])
    return [b'<a href="' + environ["SCRIPT_NAME"].encode() + b'/login">log in</a>']
"""


@pytest.mark.parametrize(
    ("path", "where"),
    [("/", "the body"), ("/away", "the Location header")],
    ids=["link", "redirect"],
)
def test_links_that_name_the_script_file_are_a_warning(
    tmp_path: Path, path: str, where: str
) -> None:
    # the guide's .htaccess rewrite: SCRIPT_NAME is /yourapplication.fcgi, and so are the links
    target = fcgi(tmp_path, hello(view=LINK_TO_SCRIPT.strip()), name="yourapplication.fcgi")
    result, text = run(target, path=path, server="apache-htaccess")
    assert result.ok, text  # the page works; its URLs are what is wrong
    [warning] = result.warnings
    assert f"the script's file name 'yourapplication.fcgi/' (in {where})" in warning.title, text
    assert "MountFix(app, '')" in warning.render()
    assert "Warnings:" in text


def test_links_without_the_script_file_are_no_warning(tmp_path: Path) -> None:
    target = fcgi(tmp_path, hello(view=LINK_TO_SCRIPT.strip()), name="yourapplication.fcgi")
    result, text = run(target, path="/", server="lighttpd")  # SCRIPT_NAME '': links are /login
    assert result.ok and not result.warnings, text


def test_cli_exit_status(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    add_check_parser(parser.add_subparsers())
    good = parser.parse_args(["check", str(fcgi(tmp_path, hello(), name="good.fcgi"))])
    assert good.run(good) == 0
    bad = parser.parse_args(["check", str(fcgi(tmp_path, "import nowhere_x\n", name="b.fcgi"))])
    assert bad.run(bad) == 1
    assert "FAILED" in capsys.readouterr().out
    unknown = parser.parse_args(["check", "x.fcgi", "--user", "no-such-user-here"])
    assert unknown.run(unknown) == 2


TRACEBACKS = [
    pytest.param(
        'Traceback (most recent call last):\n  File "/a/app.py", line 3, in <module>\n'
        "    import foo\nModuleNotFoundError: No module named 'foo.bar'\n",
        {"type": "ModuleNotFoundError", "module": "foo.bar"},
        id="module",
    ),
    pytest.param(
        "log line\nTraceback (most recent call last):\n"
        '  File "/a/app.py", line 9, in view\n    x = os.environ["K"]\n'
        '  File "<frozen os>", line 679, in __getitem__\n'
        "KeyError: 'K'\nmore log\n",
        {"type": "KeyError", "key": "K"},
        id="environ",
    ),
    pytest.param(
        "Traceback (most recent call last):\n"
        '  File "/a/app.py", line 1, in <module>\n'
        "builtins.FileNotFoundError: [Errno 2] No such file or directory: 'data/x.db'\n",
        {"type": "FileNotFoundError", "filename": "data/x.db"},
        id="file",
    ),
]


@pytest.mark.parametrize(("text", "expected"), TRACEBACKS)
def test_parse_tracebacks(text: str, expected: dict[str, str]) -> None:
    (info,) = parse_tracebacks(text)
    for key, value in expected.items():
        assert info[key] == value
    assert info["frames"][0][:2] == ["/a/app.py", info["frames"][0][1]]


def test_fcgi_that_binds_its_own_socket(tmp_path: Path) -> None:
    body = hello().replace("WSGIServer(app)", "WSGIServer(app, bindAddress=('127.0.0.1', 0))")
    out = io.StringIO()
    result = check(str(fcgi(tmp_path, body)), out=out, timeout=30)  # ends at the bind
    assert "listens on its own address ('127.0.0.1', 0)" in titles(result), out.getvalue()


def test_module_app_that_cannot_be_imported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    result, text = run("fcgikit_no_such_module_here:app")
    report = titles(result)
    assert "cannot import 'fcgikit_no_such_module_here'" in report, text
    assert "No interpreter on this machine has it" in report
    assert f"    {str(tmp_path)!r}" in report  # sys.path, with the directory check ran from
