"""What one run of the app means: the problems its answer, or its silence, shows.

The child reports events (see :mod:`fcgikit.check.child`); the request gets a response, an
error or nothing in time. :func:`interpret` turns that into problems, the most telling cause
first and alone: a development server started at import time explains everything after it,
an exception explains the missing answer, a timeout only says that nothing came.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fcgikit.check.diagnoses import RunContext, diagnose, parse_tracebacks
from fcgikit.check.result import CheckResult, Problem
from fcgikit.check.spawn import first_event

if TYPE_CHECKING:
    from fcgikit.client import FastCGIResponse


@dataclass
class Outcome:
    """What the request to the child came to."""

    response: FastCGIResponse | None
    error: BaseException | None
    timed_out: bool
    #: the child's exit status, None while it still runs
    returncode: int | None
    #: what the child wrote to stdout (a web server logs it, or loses it)
    stdout: str


def interpret(result: CheckResult, context: RunContext, outcome: Outcome, timeout: float) -> None:
    """Add to ``result`` its status and the problems ``outcome`` shows."""
    events = result.events
    app_run = first_event(events, "app_run")
    if app_run is not None:
        result.problems.append(_app_run_problem(app_run))
    elif outcome.response is None and first_event(events, "interpreter") is None:
        result.problems.append(
            Problem(
                f"{' '.join(context.shebang or ['the interpreter'])} could not even start "
                "fcgikit check's bootstrap (it needs Python 3.8+; fcgikit needs 3.11+)",
                "Its output is above. Point the shebang at the Python the app is installed for.",
            )
        )
    elif outcome.response is not None:
        result.status = outcome.response.status
        result.problems += _response_problems(outcome.response, result.stderr, context)
    else:
        result.problems += _why_no_answer(result, context, outcome, timeout)


def _app_run_problem(app_run: dict[str, Any]) -> Problem:
    where = app_run.get("where") or []
    location = f"{where[0][0]}, line {where[0][1]}: {where[0][3]}" if where else "the app"
    return Problem(
        f"the app starts a development server at import time ({location})",
        f"It binds {app_run.get('address')} instead of serving FastCGI on the socket "
        "the web server gives it.",
        "Fix: move app.run() under `if __name__ == '__main__':` in a separate file "
        "(the guide's 'Watch out'), or delete it.",
    )


def _response_problems(
    response: FastCGIResponse, stderr: str, context: RunContext
) -> list[Problem]:
    if response.status >= 500:
        infos = parse_tracebacks(stderr)
        if infos:
            return [problem for info in infos[-1:] for problem in diagnose(info, context)]
        return [Problem(f"the app answered {response.status} {response.reason}")]
    if response.status >= 400:
        return [
            Problem(
                f"the app answered {response.status} {response.reason} for the path asked",
                "Is it a URL the app serves? Ask for another with --path. Under a web server "
                "the app sees the params that server sends: try --server NAME (and --mount "
                "/prefix) to check with those.",
            )
        ]
    return []


def _why_no_answer(
    result: CheckResult, context: RunContext, outcome: Outcome, timeout: float
) -> list[Problem]:
    exception = first_event(result.events, "exception")
    if exception is not None:
        return diagnose(exception, context)
    infos = parse_tracebacks(result.stderr)
    if infos:
        return diagnose(infos[-1], context)
    bind = first_event(result.events, "bind")
    if bind is not None:
        return [
            Problem(
                f"the app listens on its own address {bind.get('address')} (bindAddress=...)",
                "so it ignores the socket a spawning web server (mod_fcgid, lighttpd bin-path) "
                "passes on fd 0. That is right for nginx or a standalone backend: start it "
                "yourself and try it with `fcgikit request ADDRESS /path`.",
            )
        ]
    if outcome.timed_out:
        return [
            Problem(
                f"no answer within {timeout:g} s",
                "The app may be stuck while importing (a database or network call at import "
                "time?). Its output so far is below.",
            )
        ]
    if first_event(result.events, "exited") is not None or outcome.returncode is not None:
        return [
            Problem(
                f"the app exited (status {outcome.returncode}) without answering",
                "Does the .fcgi end with `WSGIServer(app).run()` under "
                "`if __name__ == '__main__':`?",
            )
        ]
    return [Problem(f"the request failed: {outcome.error}")]


def script_name_in_links(
    response: FastCGIResponse, script: str, server: str | None
) -> list[Problem]:
    """A warning when the app's links or redirects name the script file (``/app.fcgi/x``).

    That is the web server's SCRIPT_NAME leaking into the app's URLs (the guide's rewrite
    recipes): the links work, but every visitor sees, bookmarks and shares them.
    """
    needle = f"{script}/".encode()
    places = [
        f"the {name} header"
        for name, value in response.headers
        if needle in value.encode("latin-1", "replace")
    ]
    if needle in response.body:
        places.append("the body")
    if not places:
        return []
    fixer = "MountFix(app)"
    if server is not None:
        from fcgikit.deploy import recommended_fixer
        from fcgikit.errors import ConfigError

        # (a configuration fcgikit.quirks knows may be one `fcgikit config` does not print)
        with contextlib.suppress(ConfigError):
            fixer = str(recommended_fixer(server) or fixer)
    return [
        Problem(
            f"the app's links contain the script's file name '{script}/' (in {', '.join(places)})",
            "The web server's SCRIPT_NAME names the script file, and the app builds its URLs "
            f"from it. Wrap the app in a fixer from fcgikit.middleware, e.g. {fixer}, or use "
            "the config `fcgikit config SERVER` prints.",
        )
    ]
