"""The ``fcgikit`` command. The only module that reads ``sys.argv``.

fcgikit serve yourapplication:app --bind unix:/run/app.sock
fcgikit serve yourapplication:create_app() --http 127.0.0.1:8000     (development front)
fcgikit config nginx --mount /yourapplication --socket unix:/run/app.sock
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import tempfile
import threading
from collections.abc import Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING

from fcgikit import __version__
from fcgikit.addresses import FdAddress, TcpAddress, UnixAddress, parse_address
from fcgikit.check import add_check_parser, add_request_parser, run_check, run_request
from fcgikit.compat import configure_logging
from fcgikit.errors import ConfigError
from fcgikit.middleware import wrap
from fcgikit.server.apploader import load_app
from fcgikit.server.listeners import inherited_listener, parse_web_server_addrs
from fcgikit.server.server import Server
from fcgikit.server.settings import ServerSettings

if TYPE_CHECKING:
    from werkzeug.serving import BaseWSGIServer

log = logging.getLogger("fcgikit.cli")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fcgikit", description="Serve WSGI apps over FastCGI behind a real web server."
    )
    parser.add_argument("--version", action="version", version=f"fcgikit {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = commands.add_parser(
        "serve",
        help="serve a WSGI app over FastCGI",
        description="Serve APP over FastCGI. With no --bind, serve the listening socket "
        "inherited on fd 0 (how mod_fcgid, lighttpd bin-path and spawn-fcgi start it).",
    )
    serve.add_argument("app", metavar="APP", help="module:attr or module:factory()")
    serve.add_argument(
        "--bind",
        "-b",
        action="append",
        default=[],
        metavar="ADDR",
        help="unix:PATH, HOST:PORT, [IPv6]:PORT or fd://0; repeat to listen on several",
    )
    defaults = ServerSettings()
    serve.add_argument(
        "--threads",
        type=int,
        default=defaults.threads,
        help=f"worker threads (default {defaults.threads})",
    )
    serve.add_argument(
        "--max-queued",
        type=int,
        default=defaults.max_queued,
        help="requests that may wait for a thread before OVERLOADED "
        f"(default {defaults.max_queued})",
    )
    serve.add_argument(
        "--multiplexed", action="store_true", help="accept several requests per connection"
    )
    serve.add_argument(
        "--debug", action="store_true", help="tracebacks in 500 pages (never in production)"
    )
    serve.add_argument(
        "--graceful-timeout",
        type=float,
        default=defaults.graceful_timeout,
        help=f"seconds running requests get after SIGTERM (default {defaults.graceful_timeout:g})",
    )
    serve.add_argument(
        "--umask",
        type=lambda v: int(v, 8),
        default=None,
        help="umask for a unix socket (octal; mode is 0660 minus it)",
    )
    serve.add_argument("--chdir", metavar="DIR", help="change to DIR before importing APP")
    serve.add_argument(
        "--mount",
        metavar="PREFIX",
        help="the URL prefix the web server serves APP at ('' for the root): SCRIPT_NAME and "
        "PATH_INFO are rebuilt from REQUEST_URI (fcgikit.wrap / MountFix), whatever the "
        "web server sent",
    )
    serve.add_argument(
        "--proxy-hops",
        type=int,
        default=0,
        metavar="N",
        help="trust X-Forwarded-For/-Proto from N proxies in front of the web server (ProxyFix)",
    )
    serve.add_argument(
        "--http",
        metavar="HOST:PORT",
        help="also serve HTTP on HOST:PORT through a development front "
        "(werkzeug; for development only)",
    )
    serve.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])

    add_check_parser(commands)
    add_request_parser(commands)

    config = commands.add_parser("config", help="print a web server config for fcgikit")
    config.add_argument("server", metavar="SERVER")
    config.add_argument("--mount", default="", help="URL prefix, e.g. /yourapplication")
    where = config.add_mutually_exclusive_group()
    where.add_argument("--socket", metavar="unix:PATH")
    where.add_argument("--port", type=int)
    config.add_argument(
        "--spawn", metavar="PATH.fcgi", help="let the web server start this .fcgi file itself"
    )
    return parser


def _resolve_binds(texts: Sequence[str]) -> tuple[UnixAddress | TcpAddress | FdAddress, ...]:
    return tuple(parse_address(text) for text in texts)


def _serve(args: argparse.Namespace) -> int:
    configure_logging(getattr(logging, args.log_level.upper()))
    if args.chdir:
        try:
            os.chdir(args.chdir)
        except OSError as exc:
            raise ConfigError(f"cannot change to {args.chdir}: {exc.strerror}") from exc
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    binds = _resolve_binds(args.bind)
    listeners = None
    dev_socket_dir = None
    if not binds:
        listener = inherited_listener(0)
        if listener is not None:
            listeners = [listener]
        elif args.http:
            dev_socket_dir = tempfile.mkdtemp(prefix="fcgikit-dev-")
            binds = (UnixAddress(os.path.join(dev_socket_dir, "app.sock")),)
        else:
            raise ConfigError(
                "nothing to listen on: fd 0 is not a listening socket. Pass --bind "
                "unix:/run/app.sock (or 127.0.0.1:9000), or --http 127.0.0.1:8000 for "
                "a development front"
            )
    app = load_app(args.app)
    if args.mount is not None or args.proxy_hops:
        app = wrap(
            app,
            mount=args.mount,
            proxy={"x_for": args.proxy_hops, "x_proto": args.proxy_hops}
            if args.proxy_hops
            else None,
        )
    settings = ServerSettings(
        binds=binds,
        threads=args.threads,
        max_queued=args.max_queued,
        multiplexed=args.multiplexed,
        debug=args.debug,
        graceful_timeout=args.graceful_timeout,
        umask=args.umask,
        web_server_addrs=parse_web_server_addrs(os.environ.get("FCGI_WEB_SERVER_ADDRS")),
        base_environ=MappingProxyType({}),
    )
    server = Server(app, settings, listeners)
    front = None
    if args.http:
        front = _start_dev_front(args.http, server)
    try:
        reload = server.serve()
    finally:
        if front is not None:
            front.shutdown()
        if dev_socket_dir is not None:
            os.rmdir(dev_socket_dir)
    if reload:
        log.info("fcgikit: SIGHUP; restarting")
        os.execv(sys.executable, [sys.executable, "-m", "fcgikit", *sys.argv[1:]])
    return 0


def _start_dev_front(http: str, server: Server) -> BaseWSGIServer:
    from werkzeug.serving import make_server

    from fcgikit.client import FastCGIGateway

    address = parse_address(http)
    if not isinstance(address, TcpAddress):
        raise ConfigError(f"--http takes HOST:PORT, not {http!r}")
    backend = server.listeners[0].getsockname()
    target = f"unix:{backend}" if isinstance(backend, str) else str(TcpAddress(*backend[:2]))
    front = make_server(address.host, address.port, FastCGIGateway(target), threaded=True)
    thread = threading.Thread(target=front.serve_forever, name="fcgikit-dev-front", daemon=True)
    thread.start()
    log.warning(
        "fcgikit: development front on http://%s:%d -> %s (for development only; "
        "put nginx, Apache or lighttpd in front in production)",
        address.host,
        front.server_port,
        target,
    )
    return front


def _config(args: argparse.Namespace) -> int:
    from fcgikit.deploy import render

    print(
        render(args.server, mount=args.mount, socket=args.socket, port=args.port, spawn=args.spawn)
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = _build_parser().parse_args(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # `fcgikit config nginx | head`: the reader left; that is not an error worth a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command == "serve":
            return _serve(args)
        if args.command == "check":
            return run_check(args)
        if args.command == "request":
            return run_request(args)
        return _config(args)
    except ConfigError as exc:
        print(f"fcgikit: {exc}", file=sys.stderr)
        return 2
