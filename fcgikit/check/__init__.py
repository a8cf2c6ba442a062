"""``fcgikit check``, ``fcgikit request`` and ``fcgikit status``: see a FastCGI app work, or
see why it does not.

The guide's advice for "premature end of headers" is to become the web server's user and run
the ``.fcgi`` by hand. ``fcgikit check`` does that properly::

    fcgikit check /var/www/yourapplication/yourapplication.fcgi --user www-data --path /news/
    fcgikit check yourapplication:app

It starts the app the way a spawning web server (mod_fcgid, lighttpd ``bin-path``) does: the
``.fcgi`` file's own interpreter from its shebang, a listening socket on fd 0, the minimal
environment web servers pass (``PATH=/usr/bin:/bin``, no HOME, no PYTHONPATH), cwd ``/``,
optionally as another user. Then it sends one real FastCGI request and prints the status,
the headers and the start of the body - or the traceback, with a diagnosis for each of the
guide's causes: a relative path that depends on the cwd, an environment variable the web
server does not set, a different interpreter than the one the app was installed for (and
where the missing module *is* installed). It also catches an ``app.run()`` at import time
(an audit hook sees the development server bind its TCP port and stops it there), and a
``.fcgi`` that is not executable or has CRLF line endings.

``fcgikit request ADDR PATH`` is a ``cgi-fcgi``-like client for smoke-testing a running
backend; ``fcgikit status ADDR`` prints a running fcgikit's status page.

The parts, in the order a check runs them: :mod:`~fcgikit.check.fcgi_file` (what the file
itself shows), :mod:`~fcgikit.check.spawn` (the app started as a web server starts it, with
:mod:`~fcgikit.check.child` as its bootstrap in the app's own interpreter),
:mod:`~fcgikit.check.outcome` and :mod:`~fcgikit.check.diagnoses` (what its answer or its
traceback means), :mod:`~fcgikit.check.result` (the report); :mod:`~fcgikit.check.run` holds
them together in :func:`check`. :mod:`~fcgikit.check.request` is ``fcgikit request``,
:mod:`~fcgikit.check.status` ``fcgikit status``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fcgikit._exports import export

# The names are imported on first use (PEP 562): ``fcgikit serve`` defines these commands'
# options (fcgikit/cli.py) but runs none of them, and would otherwise import every part of
# a check, and what they import, each time it starts.
_EXPORTS = {
    "CheckResult": "fcgikit.check.result",
    "Problem": "fcgikit.check.result",
    "add_check_parser": "fcgikit.check.command",
    "add_request_parser": "fcgikit.check.request",
    "add_status_parser": "fcgikit.check.status",
    "check": "fcgikit.check.run",
    "check_file": "fcgikit.check.fcgi_file",
    "diagnose": "fcgikit.check.diagnoses",
    "find_module_elsewhere": "fcgikit.check.interpreters",
    "parse_tracebacks": "fcgikit.check.diagnoses",
    "run_check": "fcgikit.check.command",
    "run_request": "fcgikit.check.request",
    "run_status": "fcgikit.check.status",
}

__all__ = [
    "CheckResult",
    "Problem",
    "add_check_parser",
    "add_request_parser",
    "add_status_parser",
    "check",
    "check_file",
    "diagnose",
    "find_module_elsewhere",
    "parse_tracebacks",
    "run_check",
    "run_request",
    "run_status",
]

if TYPE_CHECKING:
    from fcgikit.check.command import add_check_parser, run_check
    from fcgikit.check.diagnoses import diagnose, parse_tracebacks
    from fcgikit.check.fcgi_file import check_file
    from fcgikit.check.interpreters import find_module_elsewhere
    from fcgikit.check.request import add_request_parser, run_request
    from fcgikit.check.result import CheckResult, Problem
    from fcgikit.check.run import check
    from fcgikit.check.status import add_status_parser, run_status


def __getattr__(name: str) -> Any:
    return export(__name__, _EXPORTS, globals(), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
