"""Between FastCGI's bytes and WSGI's text, for each request: the environ its params make,
and the CGI head its status and headers make (PEP 3333: names and values latin-1 both ways).

In, :func:`environ_from_params_py` decodes the params into the environ in one pass, dropping
what only the server and the middleware may set (RESERVED_PREFIXES) and what never describes
the request (DROPPED_PARAMS); :func:`fill_cgi_defaults` puts in the CGI variables PEP 3333
requires that the web server did not send. A request that arrives whole skips the first
step: its params are decoded into its environ-to-be as its records are read, by the verdicts
on the names seen so far (:func:`environ_names_py`: the same decisions, made here once a
name). Out, :func:`encode_head_py` checks the app's status
and headers against RFC 9110 and encodes the ``Status:`` line and the header block, or raises
:class:`InvalidResponse`. :class:`~fcgikit.server.wsgi.WSGIRequest` calls them.

The C fast lane ``_speedups_wsgi_codec.c`` does the two per-request steps faster in the ordinary
case; the Python here is its spec (fcgikit/server/lanes.py), and hands it the rules at import.
"""

from __future__ import annotations

import logging
import re
import string
import sys
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from fcgikit.protocol.text_scan import text_params

log = logging.getLogger("fcgikit.server")

#: RFC 9110 5.6.2's tchar: what a header name (a token) is made of
TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
#: RFC 9110 5.5 and 15: a field value and a reason phrase hold no control character but HTAB
#: (CR and LF would split the head; the others reach the HTTP client through nginx as they
#: are). Latin-1's C1 range is obs-text, which the RFC tolerates.
FIELD_CONTROLS = "".join(chr(c) for c in (*range(0x09), *range(0x0A, 0x20), 0x7F))
#: The head's checks (a token, a status line, a control character) as patterns, compiled on
#: first use: where the C lane is built it checks the ordinary head, so a process that never
#: sends an unusual one never needs them, and its start does not compile them.
_HeadPatterns = tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]
_head_patterns: _HeadPatterns | None = None


def head_patterns() -> _HeadPatterns:
    """The patterns for a header name, a status line and a bad character in a value."""
    global _head_patterns
    if _head_patterns is None:
        controls = re.escape(FIELD_CONTROLS)
        _head_patterns = (
            re.compile(f"[{re.escape(TOKEN_CHARS)}]+\\Z"),
            re.compile(f"[1-9][0-9][0-9](?: [^{controls}]*)?\\Z"),
            re.compile(f"[{controls}]"),
        )
    return _head_patterns


_TRUE = frozenset({"on", "1", "yes", "true"})
# These never describe the request body (CGI has CONTENT_*) and HTTP_PROXY is httpoxy.
DROPPED_PARAMS: Final = frozenset({"HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_PROXY"})
#: Environ keys only the server and the middleware set, in any case: a param named so is
#: dropped, or a peer could forge what the middleware trusts (fcgikit.duplicate_params).
#: No web server sends such a name unless told to (fastcgi_param, SetEnv).
RESERVED_PREFIXES = ("wsgi.", "fcgikit.")
#: The CGI variables PEP 3333 requires, with what the environ gets when the web server did
#: not send one. The names filled in are listed in environ["fcgikit.missing_params"]: a
#: fixer must tell "not sent" from "sent empty" (nginx's stock fastcgi_params send no
#: PATH_INFO and the whole path as SCRIPT_NAME; an empty PATH_INFO means something else).
_CGI_DEFAULTS = (
    ("REQUEST_METHOD", "GET"),
    ("SCRIPT_NAME", ""),
    ("PATH_INFO", ""),
    ("QUERY_STRING", ""),
    ("SERVER_NAME", "localhost"),
    ("SERVER_PORT", "80"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
)
#: their names: an environ that has them all needs none filled in
CGI_NAMES: Final = tuple(name for name, _ in _CGI_DEFAULTS)
#: Param names an app (and build_environ) looks up, each the str its environ key is made:
#: interned, the very object a constant of that name is in Python code (and in ours,
#: compiled), so a look-up finds the key by identity instead of comparing its characters.
#: A fixed list: a name the web server chooses (HTTP_* comes from the client) is never
#: interned, which would keep every such name alive for good on some Pythons.
KNOWN_NAMES: Final = {
    name: name
    for name in map(
        sys.intern,
        (
            *CGI_NAMES,
            "CONTENT_TYPE", "CONTENT_LENGTH", "REQUEST_URI", "DOCUMENT_URI", "DOCUMENT_ROOT",
            "REQUEST_SCHEME", "HTTPS", "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "SERVER_ADDR",
            "REMOTE_ADDR", "REMOTE_PORT", "REMOTE_USER", "AUTH_TYPE", "HTTP_HOST",
            "HTTP_USER_AGENT", "HTTP_ACCEPT", "HTTP_ACCEPT_ENCODING", "HTTP_ACCEPT_LANGUAGE",
            "HTTP_COOKIE", "HTTP_CONNECTION", "HTTP_AUTHORIZATION", "HTTP_REFERER",
            "HTTP_ORIGIN", "HTTP_CACHE_CONTROL", "HTTP_IF_MODIFIED_SINCE", "HTTP_IF_NONE_MATCH",
            "HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST",
            "HTTP_X_REQUESTED_WITH",
        ),
    )
}  # fmt: skip

EnvironFromParams = Callable[
    [Mapping[str, object], dict[bytes, bytes], frozenset[str]], dict[str, Any] | None
]
EncodeHead = Callable[[object, object, int | None], bytes | None]


def give_header_rules(
    set_header_rules: Callable[[bytes, bytes, tuple[bytes, ...], dict[str, str]], None],
) -> None:
    """Hand the rules above to the C lane (its ``_set_header_rules``), which keeps no copy of
    its own and answers None until it has them."""
    set_header_rules(
        TOKEN_CHARS.encode("latin-1"),
        FIELD_CONTROLS.encode("latin-1"),
        tuple(prefix.encode("ascii") for prefix in RESERVED_PREFIXES),
        KNOWN_NAMES,
    )


#: The verdict on each param name seen before, by its bytes: its environ key (the name
#: decoded), or None for a dropped name; only names with no dot (none reserved), none empty.
#: The verdicts are for one set of dropped names (_names_dropped; another clears them).
#: Keyed by peer input: capped (a web server sends a few dozen names).
PLAIN_NAMES_CACHED = 256
_PLAIN_NAMES: dict[bytes, str | None] = {}
_names_dropped: frozenset[str] = frozenset()
#: The keys build_environ adds to the params' (wsgi.*, FCGI_ROLE, the CGI defaults...): a
#: dict sized for them from the start never grows (the C lane's ENVIRON_EXTRA_KEYS).
ENVIRON_EXTRA_KEYS: Final = 24


def environ_names_py(dropped: frozenset[str]) -> dict[bytes, str | None]:
    """The verdicts on the param names seen so far (see _PLAIN_NAMES), for ``dropped``: the
    table a scan of the params decodes them by, as text, into the environ-to-be
    (:meth:`~fcgikit.protocol.whole_request.WholeRequest.parse`). A name not in it is for
    :func:`environ_from_params_py` to decide (and then it is in it)."""
    global _names_dropped
    if dropped is not _names_dropped:
        _PLAIN_NAMES.clear()
        _names_dropped = dropped
    return _PLAIN_NAMES


#: The C fast lane (_speedups_wsgi_codec.c) for two steps of every request: building the
#: environ and encoding the head. None where it was not built, or with FCGIKIT_PURE_PYTHON=1. The
#: Python functions below are the spec. fast_environ returns what environ_from_params_py
#: returns, or None when a param has a reserved name (RESERVED_PREFIXES); then the Python
#: drops it. fast_encode_head returns what encode_head_py returns, or None for anything
#: unusual; then encode_head_py runs and raises its precise error.
fast_environ: EnvironFromParams | None
fast_encode_head: EncodeHead | None
#: the table of verdicts on param names that the environ's builder in use keeps (the C lane's,
#: or environ_names_py's), for a set of dropped names
environ_names: Callable[[frozenset[str]], dict[bytes, str | None]]
try:
    from fcgikit.server import _speedups_wsgi_codec
except ImportError:
    fast_environ = None
    fast_encode_head = None
    environ_names = environ_names_py
else:
    give_header_rules(_speedups_wsgi_codec._set_header_rules)
    fast_environ = _speedups_wsgi_codec.environ_from_params
    fast_encode_head = _speedups_wsgi_codec.encode_head
    environ_names = _speedups_wsgi_codec._name_table


class InvalidResponse(Exception):
    """The app's status or headers cannot be sent (a control character, non-latin-1, a name
    that is not a token)."""


def url_scheme(environ: dict[str, Any]) -> str:
    # No HTTPS param, or an empty one, and REQUEST_SCHEME as nginx sends it: no str() or
    # lower() to call (each a call, interpreted) in the usual request.
    https = environ.get("HTTPS")
    if https and str(https).lower() in _TRUE:
        return "https"
    scheme = environ.get("REQUEST_SCHEME")
    if scheme != "http" and scheme != "https":
        scheme = str(scheme or "").lower()
    return scheme if scheme in ("http", "https") else "http"


def environ_from_params_py(
    base: Mapping[str, object], params: dict[bytes, bytes], dropped: frozenset[str]
) -> dict[str, Any]:
    """``base`` plus the params, names and values decoded latin-1 (PEP 3333), except the
    ``dropped`` names and the reserved ones (RESERVED_PREFIXES)."""
    count = len(params)
    names = environ_names_py(dropped)
    # A web server sends the same few names every time: each seen before has its verdict in
    # _PLAIN_NAMES (which holds none with a dot, so none reserved), its key's hash known.
    decoded: dict[str, Any] | None = text_params(params, names)
    if decoded is not None:
        return {**base, **decoded} if base else decoded
    # All names in one decode and all values in another: a decode per name and value cost
    # more than the rest of this function. NUL, the separator, may only be in a peer's
    # mischief, and then the pieces are more than the params.
    names_text = b"\0".join(params).decode("latin-1")
    texts = names_text.split("\0")
    values = b"\0".join(params.values()).decode("latin-1").split("\0")
    if len(texts) != count or len(values) != count:
        texts = [name.decode("latin-1") for name in params]
        values = [value.decode("latin-1") for value in params.values()]
    elif len(names) + count <= PLAIN_NAMES_CACHED:
        plain = zip(params, texts, strict=True)
        names.update(
            (name, None if text in dropped else KNOWN_NAMES.get(text, text))
            for name, text in plain
            if text and "." not in text
        )
    # A reserved name has a dot, which no CGI or HTTP_* name has: without one, and without
    # a dropped name (the usual request), every param goes in as it is.
    if "." not in names_text and dropped.isdisjoint(texts):
        decoded = dict(zip(texts, values, strict=True))
        return {**base, **decoded} if base else decoded
    environ: dict[str, Any] = dict(base)
    reserved: list[str] | None = None
    for key, value in zip(texts, values, strict=True):
        if key in dropped:
            continue
        if "." in key and key.lower().startswith(RESERVED_PREFIXES):
            if reserved is None:
                reserved = []
            reserved.append(key)
            continue
        environ[key] = value
    if reserved is not None:
        log.debug(
            "dropped %d param(s) with a reserved name (wsgi.*, fcgikit.*): %s",
            len(reserved),
            ", ".join(repr(key) for key in reserved[:5]),
        )
    return environ


def fill_cgi_defaults(environ: dict[str, Any]) -> None:
    """Put in the CGI variables the web server did not send (_CGI_DEFAULTS), and name them
    in ``environ["fcgikit.missing_params"]``."""
    missing = []
    for key, default in _CGI_DEFAULTS:
        if key not in environ:
            environ[key] = default
            missing.append(key)
    environ["fcgikit.missing_params"] = frozenset(missing)


#: The status lines and the header names that passed their pattern before, each in its own
#: table: an app sends the same few every time, and a look-up costs a fraction of a match,
#: interpreted (the C lane checks its own). Capped: an app may build them from its input.
CHECKED_CACHED = 256
_statuses_checked: set[str] = set()
_names_checked: set[str] = set()


def _matches(text: str, pattern: re.Pattern[str], checked: set[str]) -> bool:
    """``pattern`` matches ``text``, a status line or a header name not in its table
    ``checked`` yet; put in the table if it does (a plain str only: a subclass may compare
    equal to text it is not)."""
    if pattern.match(text) is None:
        return False
    if len(checked) < CHECKED_CACHED and type(text) is str:
        checked.add(text)
    return True


#: The heads made before, by what they were made of: (status, content_length, *headers). An
#: app sends the same few heads again and again, and their look-up costs a quarter of
#: checking and formatting one, interpreted (the C lane makes its own). Only heads made of
#: plain str, tuples and int go in, so a hit is the head the checks would make of equal
#: plain values (a subclass equal to one, say True for 1, gets that one's head: valid).
#: Emptied when full: an app that varies a header (a date, a cookie) fills it with heads
#: seen once, and the steady ones come back. A long head (cookies, say) is not kept.
HEADS_CACHED = 256
HEAD_CACHED_MAX = 1024
_heads: dict[tuple[object, ...], bytes] = {}


def encode_head_py(status: object, headers: Iterable[object], content_length: int | None) -> bytes:
    """The CGI head: Status line, headers, a Content-Length when ``content_length`` is given
    and the app sent none, blank line. Raises InvalidResponse for what cannot be sent."""
    if type(headers) is not list:  # (an iterator would be spent by its key)
        return _encode_head(status, headers, content_length)
    key = (status, content_length, *headers)
    try:
        head = _heads.get(key)
    except TypeError:  # an unhashable header (a list, say): the checks say what is wrong
        return _encode_head(status, headers, content_length)
    if head is None:
        head = _encode_head(status, headers, content_length)
        if (
            len(head) <= HEAD_CACHED_MAX
            and type(status) is str
            # (the key's, an object: compiled, content_length narrowed to int is unboxed,
            # and True boxes again as 1)
            and (content_length is None or type(key[1]) is int)
            and all(
                type(item) is tuple and type(item[0]) is str and type(item[1]) is str
                for item in headers
            )
        ):
            if len(_heads) >= HEADS_CACHED:
                _heads.clear()
            _heads[key] = head
    return head


def _encode_head(status: object, headers: Iterable[object], content_length: int | None) -> bytes:
    token, status_line, bad_value = _head_patterns or head_patterns()
    if not isinstance(status, str) or not (
        status in _statuses_checked or _matches(status, status_line, _statuses_checked)
    ):
        raise InvalidResponse(f"bad status line {status!r}")
    lines = [f"Status: {status}\r\n"]
    # Looked for only when there is a length to add (a lower() a header, interpreted)
    has_length = content_length is None
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise InvalidResponse(f"a header must be a (name, value) tuple, not {item!r}")
        name, value = item
        if not isinstance(name, str) or not (
            name in _names_checked or _matches(name, token, _names_checked)
        ):
            raise InvalidResponse(f"bad header name {name!r}")
        # (a printable value holds no control character: one call, not a pattern's search)
        if not isinstance(value, str) or (
            not value.isprintable() and bad_value.search(value) is not None
        ):
            raise InvalidResponse(f"bad value for header {name}: {value!r}")
        if not has_length and name.lower() == "content-length":
            has_length = True
        lines.append(f"{name}: {value}\r\n")
    if not has_length:
        lines.append(f"Content-Length: {content_length}\r\n")
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise InvalidResponse(
            f"a header is not latin-1: {exc.object[exc.start : exc.end]!r}"
        ) from exc


def declares_length(headers: list[tuple[str, str]], size: int) -> bool:
    """``headers`` (an app's, as start_response got them) say Content-Length: ``size``
    (malformed ones are encode_head's job)."""
    if ("Content-Length", str(size)) in headers:  # werkzeug's: no calls a header
        return True
    for item in headers:
        if (
            isinstance(item, tuple)
            and len(item) == 2
            and isinstance(item[0], str)
            and item[0].lower() == "content-length"
        ):
            return str(item[1]).strip() == str(size)
    return False
