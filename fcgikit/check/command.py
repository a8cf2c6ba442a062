"""``fcgikit check``'s options, and its exit status: 0 it answered well, 1 it did not, 2 misused."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse


def add_check_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``fcgikit check FILE.fcgi | module:app [--user USER] [--path /url]``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "check",
        help="run the app as a web server would and send it one request",
        description="Start FILE.fcgi (with its shebang's interpreter) or module:app the way a "
        "spawning web server does - socket on fd 0, PATH=/usr/bin:/bin only, cwd / - send one "
        "FastCGI request, and print the response or why it failed.",
    )
    parser.add_argument("target", metavar="FILE.fcgi|module:app")
    parser.add_argument("--user", "-u", help="run the app as this user (needs root)")
    parser.add_argument("--path", default="/", help="the URL to request (default /)")
    parser.add_argument("--method", "-X", default="GET")
    parser.add_argument(
        "--server",
        help="send the params this web server configuration sends (see fcgikit.quirks), "
        "e.g. apache-htaccess, lighttpd, nginx",
    )
    parser.add_argument("--mount", default="", help="with --server: the app's URL prefix")
    parser.add_argument(
        "--env",
        "-e",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="add to the app's environment, as the web server config would",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.set_defaults(run=run_check)
    return parser


def run_check(args: argparse.Namespace) -> int:
    """Run ``fcgikit check`` with its parsed ``args``; the exit status."""
    # here: every fcgikit command defines this one's options, only this one runs a check
    from fcgikit.check.run import check

    try:
        result = check(
            args.target,
            user=args.user,
            path=args.path,
            method=args.method,
            server=args.server,
            mount=args.mount,
            env=args.env,
            timeout=args.timeout,
        )
    except (ValueError, KeyError) as exc:
        print(f"fcgikit check: {exc}", file=sys.stderr)
        return 2
    return 0 if result.ok else 1
