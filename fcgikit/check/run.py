"""One run of ``fcgikit check``, step by step: the target, the child, one request, the verdict.

:func:`check` reads the ``.fcgi`` file (:mod:`~fcgikit.check.fcgi_file`), starts it the way a
spawning web server would (:mod:`~fcgikit.check.spawn`), sends one FastCGI request, explains
what came back (:mod:`~fcgikit.check.outcome`) and prints it all
(:mod:`~fcgikit.check.result`).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

from fcgikit.check.diagnoses import RunContext
from fcgikit.check.fcgi_file import blocking_directory, check_file
from fcgikit.check.outcome import Outcome, interpret, script_name_in_links
from fcgikit.check.result import CheckResult, Problem, report
from fcgikit.check.spawn import MINIMAL_PATH, Account, AppProcess, first_event, user_ids

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import TextIO

    from fcgikit.client import FastCGIResponse


@dataclass(frozen=True)
class _App:
    """The app to check, and how a web server would start it."""

    #: the ``.fcgi`` file's absolute path, or ``module:app``
    target: str
    is_file: bool
    #: where the app lives: the file's directory, or where fcgikit check was run from
    directory: str
    shebang: list[str] | None
    command: list[str]
    config: dict[str, str]


def check(
    target: str,
    *,
    user: str | None = None,
    path: str = "/",
    method: str = "GET",
    server: str | None = None,
    mount: str = "",
    env: Sequence[str] = (),
    timeout: float = 30.0,
    out: TextIO | None = None,
) -> CheckResult:
    """Run ``target`` (a ``.fcgi`` file or ``module:app``) as a web server would, send it one
    request, and print what happened to ``out``. See :mod:`fcgikit.check`."""
    from fcgikit.quirks import SCRIPT_FILE, SERVERS

    if server is not None and server not in SERVERS:
        raise ValueError(f"unknown --server {server!r}; known: {', '.join(SERVERS)}")
    out = out if out is not None else sys.stdout
    result = CheckResult()
    account = user_ids(user)
    invoked_from = os.getcwd()
    child_env = _child_environment(env)
    if os.path.exists(target) or target.endswith((".fcgi", ".py", ".cgi")):
        target = os.path.abspath(target)
        shebang, problems = check_file(target, account.uid, account.gids)
        result.problems += problems
        if shebang is None:
            report(result, out, target)
            return result
        config = {"mode": "fcgi", "target": target, "path0": os.path.dirname(target)}
        app = _App(target, True, os.path.dirname(target), shebang, list(shebang), config)
    else:
        config = {"mode": "app", "target": target, "path0": invoked_from}
        app = _App(target, False, invoked_from, None, [sys.executable], config)
    _print_start(out, app, account, child_env)
    send = _sender(server, method, path, mount, timeout)
    outcome = _run_child(app, child_env, account, send, timeout, result)
    if outcome is None:
        report(result, out, app.target)
        return result
    interpreter = first_event(result.events, "interpreter")
    context = RunContext(
        app.target, account.name, app.shebang, interpreter, app.directory, invoked_from
    )
    interpret(result, context, outcome, timeout)
    if outcome.response is not None:
        script = os.path.basename(app.target) if app.is_file else SCRIPT_FILE
        result.warnings += script_name_in_links(outcome.response, script, server)
    report(result, out, app.target, response=outcome.response, stdout=outcome.stdout)
    return result


def _child_environment(env: Sequence[str]) -> dict[str, str]:
    """What a web server gives the app it spawns, plus the ``--env NAME=VALUE`` given."""
    child_env = {"PATH": MINIMAL_PATH}
    for item in env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            raise ValueError(f"--env takes NAME=VALUE, not {item!r}")
        child_env[name] = value
    return child_env


def _print_start(out: TextIO, app: _App, account: Account, child_env: dict[str, str]) -> None:
    print(f"fcgikit check: {app.target}", file=out)
    print(
        f"  as {account.name} in / with PATH={MINIMAL_PATH}"
        + "".join(f" {k}=..." for k in child_env if k != "PATH"),
        file=out,
    )
    print(f"  interpreter: {' '.join(app.command)}", file=out)


def _sender(
    server: str | None, method: str, path: str, mount: str, timeout: float
) -> Callable[[str], FastCGIResponse]:
    """The request to send: the params ``server`` would send, or the client's defaults."""
    from fcgikit.client import FastCGIClient
    from fcgikit.quirks import fastcgi_params

    request_path, _, query = path.partition("?")

    def send(address: str) -> FastCGIResponse:
        client = FastCGIClient(address, timeout=timeout)
        try:
            if server is not None:
                params = fastcgi_params(server, method, path, mount=mount)
                return client.request(raw_params=params)
            return client.request(method, request_path, query=query)
        finally:
            client.close()

    return send


def _run_child(
    app: _App,
    child_env: dict[str, str],
    account: Account,
    send: Callable[[str], FastCGIResponse],
    timeout: float,
    result: CheckResult,
) -> Outcome | None:
    """Start the app, send the request, stop the app; None (and the problem in ``result``) if
    it could not be started."""
    workdir = tempfile.mkdtemp(prefix="fcgikit-check-")
    try:
        try:
            process = AppProcess(
                app.command, app.config, env=child_env, account=account, workdir=workdir
            )
        except OSError as exc:
            result.problems.append(_cannot_start(app.command[0], account, exc))
            return None
        try:
            response, error, timed_out = process.request(send, timeout)
        finally:
            process.stop()
        stdout, result.stderr = process.output()
        result.events = process.events
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return Outcome(response, error, timed_out, process.process.returncode, stdout)


def _cannot_start(interpreter: str, account: Account, exc: OSError) -> Problem:
    blocked = blocking_directory(interpreter, account.uid, account.gids)
    return Problem(
        f"cannot start {interpreter} as {account.name}: {exc.strerror or exc}",
        *(
            [
                f"{account.name} may not enter {blocked}: an interpreter under a home "
                "directory (pyenv, a venv in /root) is out of the web server's "
                "reach. Use one it can run, e.g. a venv under /srv or /var/www."
            ]
            if blocked
            else []
        ),
    )
