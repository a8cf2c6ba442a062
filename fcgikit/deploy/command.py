"""``fcgikit config SERVER``: print the web server (or process manager) config for an app
served by fcgikit, as :func:`~fcgikit.deploy.render` writes it; the docs' ``fcgikit-config``
directive prints the same (:func:`config_text`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from fcgikit.deploy.config import render

if TYPE_CHECKING:
    import argparse


def add_config_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``fcgikit config SERVER [--mount /prefix] [--socket unix:PATH | --port N] ...``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "config", help="print a web server config for fcgikit"
    )
    parser.add_argument("server", metavar="SERVER")
    parser.add_argument("--mount", default="", help="URL prefix, e.g. /yourapplication")
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="unix:PATH")
    where.add_argument("--port", type=int)
    parser.add_argument(
        "--spawn", metavar="PATH.fcgi", help="let the web server start this .fcgi file itself"
    )
    parser.add_argument(
        "--keep-conn",
        action="store_true",
        help="nginx only: reuse FastCGI connections (an upstream block with keepalive, for "
        "http { }, plus fastcgi_keep_conn on); faster, but a reload can rarely cost a POST a 502",
    )
    parser.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="nginx and haproxy: one app server of several (repeat it; unix:PATH works too); "
        "the web server balances them and skips one it cannot reach",
    )
    parser.add_argument(
        "--ping-path",
        metavar="PATH",
        help="nginx and haproxy: the app's fcgikit serve --ping-path; HAProxy health-checks "
        "each server with it (a draining fcgikit goes out of rotation), nginx passes it to "
        "fcgikit when it is outside --mount",
    )
    parser.set_defaults(run=run_config)
    return parser


def config_text(args: argparse.Namespace) -> str:
    """What ``fcgikit config`` prints for its parsed ``args`` (the docs' directive too)."""
    return render(
        args.server,
        mount=args.mount,
        socket=args.socket,
        port=args.port,
        spawn=args.spawn,
        keep_conn=args.keep_conn,
        upstreams=args.upstream,
        ping_path=args.ping_path,
    )


def run_config(args: argparse.Namespace) -> int:
    """Run ``fcgikit config`` with its parsed ``args``: print the config (ConfigError, which
    the command reports with status 2, for options the server cannot take)."""
    print(config_text(args))
    return 0
