"""``fcgikit status ADDR``: print a running server's status page (``fcgikit serve
--status-path``), asked for over FastCGI directly on its socket.

A pool's master and a lone server answer such a client whatever ``--status-allow`` says (the
param :data:`~fcgikit.server.status.DIRECT_CLIENT_PARAM` marks it), so an operator on the
machine needs no web server route to the page.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse


def add_status_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``fcgikit status ADDR [--path /fcgikit-status] [--json | --openmetrics]``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "status",
        help="print a running server's status page (fcgikit serve --status-path)",
        description="Ask a running fcgikit serve (a pool or a single process) for its status "
        "page over FastCGI, directly on its socket: the page answers such a client whatever "
        "--status-allow says.",
    )
    parser.add_argument("address", metavar="ADDR", help="unix:PATH or HOST:PORT it listens on")
    parser.add_argument("--path", default="/fcgikit-status", help="its --status-path")
    form = parser.add_mutually_exclusive_group()
    form.add_argument("--json", action="store_true", help="the JSON form")
    form.add_argument(
        "--openmetrics", action="store_true", help="the OpenMetrics form Prometheus scrapes"
    )
    parser.set_defaults(run=run_status)
    return parser


def run_status(args: argparse.Namespace) -> int:
    """Run ``fcgikit status`` with its parsed ``args``: 0 it printed the page, 1 the address
    answered nothing or no status page."""
    from fcgikit.client import FastCGIClient
    from fcgikit.server.status import DIRECT_CLIENT_PARAM

    try:
        with FastCGIClient(args.address, timeout=10) as client:
            response = client.request(
                "GET",
                args.path,
                query="json" if args.json else "openmetrics" if args.openmetrics else "",
                params={DIRECT_CLIENT_PARAM: "fcgikit status"},
            )
    except OSError as exc:
        print(f"fcgikit status: cannot reach {args.address}: {exc}", file=sys.stderr)
        return 1
    # the page's own mark: any app can answer 200 text/plain at that path
    if response.status != 200 or response.header("X-Fcgikit-Worker") is None:
        print(
            f"fcgikit status: {args.address} answered {response.status} for {args.path}, "
            "not a status page: is it running with --status-path?",
            file=sys.stderr,
        )
        return 1
    sys.stdout.write(response.body.decode("utf-8", "replace"))
    return 0
