"""``fcgikit request ADDR PATH``: one request to a running FastCGI app, like ``cgi-fcgi``.

For smoke-testing a backend without a web server in front: the response body goes to stdout
(``-i``: the status and headers first), the app's FCGI_STDERR to stderr. Built on
:class:`fcgikit.client.FastCGIClient`, so the app sees the params nginx would send.
"""

from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import argparse

    from fcgikit.client import FastCGIResponse


def add_request_parser(subparsers: Any) -> argparse.ArgumentParser:
    """``fcgikit request ADDR PATH [-X M] [-d DATA|@file] [-H 'N: v'] [--param K=V] [-i]``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "request",
        help="send one request to a FastCGI app (like cgi-fcgi)",
        description="Send one FastCGI request to the app at ADDR (unix:PATH, /path.sock or "
        "HOST:PORT) and write the response body to stdout.",
    )
    parser.add_argument("address", metavar="ADDR")
    parser.add_argument("path", metavar="PATH", help="path and query, e.g. /search?q=x")
    parser.add_argument("-X", "--request", dest="method", help="method (default GET, POST with -d)")
    parser.add_argument(
        "-d", "--data", help="request body; @FILE reads a file, @- reads stdin (sent as is)"
    )
    parser.add_argument(
        "-H", "--header", action="append", default=[], metavar="'Name: value'", dest="headers"
    )
    parser.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="set a FastCGI param directly (overrides the defaults, e.g. SCRIPT_NAME=/app)",
    )
    parser.add_argument(
        "-i", "--include", action="store_true", help="print the status and headers first"
    )
    parser.add_argument(
        "-f", "--fail", action="store_true", help="exit 22 when the status is 400 or more"
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds (default 30)")
    parser.set_defaults(run=run_request)
    return parser


def _read_data(data: str) -> bytes:
    if not data.startswith("@"):
        return os.fsencode(data)
    if data == "@-":
        return sys.stdin.buffer.read()
    with open(data[1:], "rb") as f:
        return f.read()


class _UsageError(Exception):
    """An option ``fcgikit request`` cannot use; the message says which and why."""


def _headers_and_params(
    args: argparse.Namespace,
) -> tuple[list[tuple[str, str]], dict[str | bytes, str | bytes]]:
    headers: list[tuple[str, str]] = []
    for header in args.headers:
        name, sep, value = header.partition(":")
        if not sep or not name.strip():
            raise _UsageError(f"-H takes 'Name: value', not {header!r}")
        headers.append((name.strip(), value.strip()))
    params: dict[str | bytes, str | bytes] = {}
    for param in args.param:
        name, sep, value = param.partition("=")
        if not sep or not name:
            raise _UsageError(f"--param takes NAME=VALUE, not {param!r}")
        params[os.fsencode(name)] = os.fsencode(value)
    return headers, params


def run_request(args: argparse.Namespace) -> int:
    """Run ``fcgikit request`` with its parsed ``args``: 0 answered, 1 failed or refused, 2
    misused, 22 a status of 400 or more with ``--fail``."""
    from fcgikit.client import FastCGIClient
    from fcgikit.errors import FcgikitError

    try:
        headers, params = _headers_and_params(args)
    except _UsageError as exc:
        print(f"fcgikit request: {exc}", file=sys.stderr)
        return 2
    try:
        body = b"" if args.data is None else _read_data(args.data)
    except OSError as exc:
        print(f"fcgikit request: cannot read {args.data[1:]}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.data is not None and not any(n.lower() == "content-type" for n, _ in headers):
        headers.append(("Content-Type", "application/x-www-form-urlencoded"))  # as curl -d
    method = args.method or ("POST" if args.data is not None else "GET")
    path, _, query = args.path.partition("?")
    address = args.address
    try:
        with FastCGIClient(address, timeout=args.timeout) as client:
            response = client.request(
                method, path, query=query, headers=headers, body=body, params=params
            )
    except (OSError, FcgikitError) as exc:
        reason = getattr(exc, "strerror", None) or exc
        print(f"fcgikit request: {address}: {reason}", file=sys.stderr)
        return 1
    _write_response(response, include_head=args.include)
    if response.protocol_status.name != "REQUEST_COMPLETE":
        print(f"fcgikit request: the app refused: {response.protocol_status.name}", file=sys.stderr)
        return 1
    if args.fail and response.status >= 400:
        return 22
    return 0


def _write_response(response: FastCGIResponse, *, include_head: bool) -> None:
    """The app's stderr to stderr; the body (after the head, with ``-i``) to stdout."""
    if response.stderr:
        sys.stderr.buffer.write(response.stderr)
        sys.stderr.flush()
    output = sys.stdout.buffer
    if include_head:
        head = f"Status: {response.status} {response.reason}\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in response.headers)
        output.write((head + "\r\n").encode("latin-1"))
    output.write(response.body)
    output.flush()
