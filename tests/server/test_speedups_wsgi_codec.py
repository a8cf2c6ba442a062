"""The C fast lane of the WSGI request (fcgikit/server/_speedups_wsgi_codec.c) against its spec.

``WSGIRequest`` builds the environ with ``environ_from_params`` and encodes the response head
with ``encode_head`` when the C module is there. The lane must give what
``environ_from_params_py`` and ``encode_head_py`` in wsgi_codec.py give. For a head the Python
would refuse, it must answer None, so that the Python raises its precise error. The rules
(token characters, the controls a value may not hold, the reserved prefixes) are wsgi_codec's,
handed to the lane at import: it follows whatever it is given, and answers None until then.
scripts/test runs this file in both passes: as installed, the lane must be what wsgi.py uses;
with ``FCGIKIT_PURE_PYTHON=1`` wsgi.py must run the Python alone, and the same requests must
come out the same. Either way, hypothesis holds the lane to the Python (tests/native.py loads
it in the pure-Python pass too), so neither pass can go green by testing the other's code.
"""

from __future__ import annotations

import gc
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from types import MappingProxyType, ModuleType
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fcgikit.protocol import RequestReceived, Role
from fcgikit.server import wsgi, wsgi_codec
from fcgikit.server.settings import ServerSettings
from fcgikit.server.wsgi import WSGIRequest
from fcgikit.server.wsgi_codec import InvalidResponse
from tests.native import (
    PURE_PYTHON_PASS,
    Call,
    assert_calls_leave_nothing_behind,
    fresh_lane,
    load_lane,
)

DROPPED = wsgi_codec.DROPPED_PARAMS
LANE = "fcgikit.server._speedups_wsgi_codec"


@pytest.fixture(scope="module")
def lane() -> ModuleType:
    lane = load_lane(LANE)
    wsgi_codec.give_header_rules(lane._set_header_rules)  # as wsgi_codec does at import
    return lane


@pytest.fixture(params=["C", "Python"])
def either_lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """wsgi.py with its C lane plugged in, or with none: each request test runs both ways, in
    both passes (so the pure-Python pass runs the lane's path through wsgi.py too). The
    Python way runs where no lane was built (the pure wheel) too."""
    if request.param == "C":
        lane = request.getfixturevalue("lane")
        monkeypatch.setattr(wsgi, "fast_environ", lane.environ_from_params)
        monkeypatch.setattr(wsgi, "fast_encode_head", lane.encode_head)
    else:
        monkeypatch.setattr(wsgi, "fast_environ", None)
        monkeypatch.setattr(wsgi, "fast_encode_head", None)


def test_the_lane_is_on_exactly_when_the_pass_says(lane: ModuleType) -> None:
    if PURE_PYTHON_PASS:
        with pytest.raises(ImportError):
            import fcgikit.server._speedups_wsgi_codec  # noqa: F401
        assert wsgi_codec.fast_environ is wsgi.fast_environ is None
        assert wsgi_codec.fast_encode_head is wsgi.fast_encode_head is None
        return
    assert wsgi_codec.fast_environ is wsgi.fast_environ is lane.environ_from_params
    assert wsgi_codec.fast_encode_head is wsgi.fast_encode_head is lane.encode_head


# --- what a request sees, in both passes --------------------------------------------------


class RecordingSink:
    """Stands in for the Channel: keeps what a finished request would send."""

    def __init__(self) -> None:
        self.finished: list[tuple[bytes, bytes, int]] = []

    def send_output(self, request: WSGIRequest, data: bytes) -> None:
        raise AssertionError("these responses go out whole, with END_REQUEST")

    def send_stderr(self, request: WSGIRequest, data: bytes) -> None:
        pass

    def finish(self, request: WSGIRequest, head: bytes, body: bytes, app_status: int) -> None:
        self.finished.append((head, body, app_status))

    def request_done(self, request: WSGIRequest, *, on_loop: bool) -> None:
        pass

    def web_server_gone(self) -> bool:
        return False


def run(
    params: dict[bytes, bytes],
    status: Any = "200 OK",
    headers: Any = (),
    base_environ: dict[str, object] | None = None,
) -> tuple[dict[str, Any], bytes, WSGIRequest]:
    """One request through WSGIRequest: (the environ the app got, the head it sent, it)."""
    seen: list[dict[str, Any]] = []

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(environ)
        start_response(status, list(headers))
        return [b"hello"]

    event = RequestReceived(
        request_id=1,
        role=Role.RESPONDER,
        keep_conn=True,
        params=params,
        duplicate_names=frozenset(),
    )
    server_settings = ServerSettings(base_environ=MappingProxyType(base_environ or {}))
    sink = RecordingSink()
    request = WSGIRequest(sink, event, app, server_settings)
    request.run()
    ((head, _body, _status),) = sink.finished
    return seen[0], head, request


@pytest.mark.parametrize(
    ("params", "base", "expected"),
    [
        pytest.param(
            {b"PATH_INFO": b"/hello", b"QUERY_STRING": b"a=1"},
            {},
            {"PATH_INFO": "/hello", "QUERY_STRING": "a=1"},
            id="ordinary",
        ),
        pytest.param(
            {b"PATH_INFO": b"/caf\xc3\xa9", b"HTTP_X_\xff": b"\x80\x00"},
            {},
            {"PATH_INFO": "/caf\xc3\xa9", "HTTP_X_\xff": "\x80\x00"},
            id="latin-1, as PEP 3333 says",
        ),
        pytest.param(
            {b"HTTP_PROXY": b"http://evil", b"HTTP_CONTENT_LENGTH": b"9", b"HTTP_HOST": b"h"},
            {},
            {"HTTP_HOST": "h"},
            id="httpoxy and HTTP_CONTENT_* dropped",
        ),
        pytest.param(
            {b"SERVER_NAME": b"from-the-web-server"},
            {"SERVER_NAME": "base", "app.setting": 1},
            {"SERVER_NAME": "from-the-web-server", "app.setting": 1},
            id="params override base_environ",
        ),
        pytest.param({b"": b"empty name"}, {}, {"": "empty name"}, id="an empty name"),
        pytest.param(
            {b"wsgi.input": b"x", b"FCGIKIT.orig": b"{}", b"fcgikit_x": b"1", b"WSGI": b"2"},
            {},
            {"fcgikit_x": "1", "WSGI": "2"},
            id="reserved names dropped",
        ),
    ],
)
def test_the_environ_has_the_params_decoded_latin1(
    params: dict[bytes, bytes],
    base: dict[str, object],
    expected: dict[str, object],
    either_lane: None,
) -> None:
    environ, _, _ = run(params, base_environ=base)
    assert {key: environ[key] for key in expected} == expected
    assert not {"HTTP_PROXY", "HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE"} & set(environ)
    assert "FCGIKIT.orig" not in environ
    assert environ["wsgi.version"] == (1, 0)
    assert type(environ["wsgi.input"]).__name__ == "RequestBody"


class Text(str):
    """A str subclass: the lane leaves it to the Python, which accepts it."""


class Shouting(str):
    """A str subclass whose f-string is not its text: the lane must leave it to the Python."""

    def __str__(self) -> str:
        return self.upper()


@pytest.mark.parametrize(
    ("status", "headers", "head"),
    [
        pytest.param(
            "200 OK",
            [("Content-Type", "text/plain")],
            b"Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\n",
            id="ordinary: Content-Length added",
        ),
        pytest.param(
            "404 Not Found",
            [("content-LENGTH", "5"), ("X-A", "")],
            b"Status: 404 Not Found\r\ncontent-LENGTH: 5\r\nX-A: \r\n\r\n",
            id="the app's Content-Length, in any case",
        ),
        pytest.param(
            "204", [], b"Status: 204\r\nContent-Length: 5\r\n\r\n", id="status code alone"
        ),
        pytest.param(
            "200 Caf\xe9",
            [("X-Name", "\xe9t\xe9 \x80\xff")],
            b"Status: 200 Caf\xe9\r\nX-Name: \xe9t\xe9 \x80\xff\r\nContent-Length: 5\r\n\r\n",
            id="latin-1 text",
        ),
        pytest.param(
            "200 O\tK",
            [("X-Tab", "a\tb")],
            b"Status: 200 O\tK\r\nX-Tab: a\tb\r\nContent-Length: 5\r\n\r\n",
            id="HTAB, the one control character allowed",
        ),
        pytest.param(
            Text("201 Created"),
            (("Location", Text("/a")),),
            b"Status: 201 Created\r\nLocation: /a\r\nContent-Length: 5\r\n\r\n",
            id="str subclasses (the Python path)",
        ),
    ],
)
def test_the_head_is_the_cgi_status_and_headers(
    status: Any, headers: Any, head: bytes, either_lane: None
) -> None:
    _, sent, request = run({}, status, headers)
    assert sent == head
    assert request.status_code == int(status[:3])


@pytest.mark.parametrize(
    ("status", "headers", "error"),
    [
        pytest.param("200 OK\n", [], "bad status line '200 OK\\n'", id="newline at the end"),
        pytest.param("200\n", [], "bad status line '200\\n'", id="newline after the code"),
        pytest.param("20 OK", [], "bad status line", id="two digits"),
        pytest.param("099 Nope", [], "bad status line", id="leading zero"),
        pytest.param("200OK", [], "bad status line", id="no space"),
        pytest.param("200 a\x00b", [], "bad status line", id="NUL in the reason"),
        pytest.param("200 a\x0bb", [], "bad status line", id="VT in the reason"),
        pytest.param("200 OK\x7f", [], "bad status line", id="DEL in the reason"),
        pytest.param("200 \u20ac", [], "a header is not latin-1: '\u20ac'", id="euro status"),
        pytest.param("200 OK", [("Bad Name", "x")], "bad header name 'Bad Name'", id="space"),
        pytest.param("200 OK", [("", "x")], "bad header name ''", id="empty name"),
        pytest.param("200 OK", [(b"X", "x")], "bad header name b'X'", id="bytes name"),
        pytest.param("200 OK", [("X", "a\r\nB: c")], "bad value for header X", id="CRLF"),
        pytest.param("200 OK", [("X", "a\x00")], "bad value for header X", id="NUL"),
        pytest.param("200 OK", [("X", "a\x0b")], "bad value for header X", id="VT"),
        pytest.param("200 OK", [("X", "a\x0c")], "bad value for header X", id="FF"),
        pytest.param("200 OK", [("X", "\x1b[0m")], "bad value for header X", id="ESC"),
        pytest.param("200 OK", [("X", "a\x7f")], "bad value for header X", id="DEL"),
        pytest.param("200 OK", [("X", "\x1f")], "bad value for header X", id="US"),
        pytest.param("200 OK", [("X", 5)], "bad value for header X: 5", id="int value"),
        pytest.param("200 OK", [("X", "\u0100")], "a header is not latin-1", id="U+0100"),
        pytest.param("200 OK", [("X", "a", "b")], "must be a (name, value) tuple", id="3-tuple"),
        pytest.param("200 OK", [["X", "a"]], "must be a (name, value) tuple", id="a list"),
    ],
)
def test_an_invalid_head_is_a_500_that_says_why(
    status: Any,
    headers: Any,
    error: str,
    caplog: pytest.LogCaptureFixture,
    either_lane: None,
) -> None:
    _, sent, request = run({}, status, headers)
    assert sent.startswith(b"Status: 500 Internal Server Error\r\n")
    assert request.status_code == 500
    (message,) = [r.getMessage() for r in caplog.records if "invalid response" in r.getMessage()]
    assert error in message


# --- the lane against the Python (installed pass) -----------------------------------------

NAMES = st.one_of(
    st.sampled_from(
        [
            b"PATH_INFO",
            b"HTTP_HOST",
            b"HTTP_PROXY",
            b"HTTP_CONTENT_TYPE",
            b"",
            b"\xff\x80",
            b"N" * 80,
            # reserved, in any case, and names that only look like it
            b"wsgi.input",
            b"WSGI.x",
            b"fcgikit.duplicate_params",
            b"FcGiKiT.",
            b"wsgi",
            b"fcgikit",
            b"wsgi_x",
            b"Fcgikit:x",
            b"w",
            b"F",
            b"wsgi\xae",
        ]
    ),
    st.binary(max_size=20),
    st.builds(
        bytes.__add__,
        st.sampled_from([b"wsgi.", b"Wsgi.", b"fcgikit.", b"FCGIKIT.", b"wsgi,", b"fcgikit"]),
        st.binary(max_size=8),
    ),
)
VALUES = st.one_of(st.sampled_from([b"", b"GET", b"\x00\r\n\xff"]), st.binary(max_size=40))
PARAMS = st.dictionaries(NAMES, VALUES, max_size=12)
BASES = st.one_of(
    st.just(MappingProxyType({})),
    st.builds(MappingProxyType, st.dictionaries(st.text(max_size=8), st.integers(), max_size=3)),
    st.dictionaries(st.sampled_from(["PATH_INFO", "x", "wsgi.version"]), st.integers(), max_size=3),
)
DROPS = st.one_of(
    st.just(DROPPED),
    st.frozensets(st.sampled_from(["PATH_INFO", "HTTP_HOST", "\xff\x80", ""]), max_size=2),
)


def reserved(name: bytes) -> bool:
    """The names only the server and the middleware may set: ``wsgi.*``, ``fcgikit.*``."""
    return name.decode("latin-1").lower().startswith(wsgi_codec.RESERVED_PREFIXES)


@given(base=BASES, params=PARAMS, dropped=DROPS)
@settings(max_examples=500, deadline=None)
def test_environ_from_params_is_the_python_or_declines_a_reserved_name(
    lane: ModuleType, base: Any, params: dict[bytes, bytes], dropped: frozenset[str]
) -> None:
    expected = wsgi_codec.environ_from_params_py(base, params, dropped)
    assert not any(reserved(key.encode("latin-1")) for key in set(expected) - set(base))
    environ = lane.environ_from_params(base, params, dropped)
    if any(reserved(name) for name in params):
        assert environ is None  # the Python drops it, and logs it
        return
    assert environ == expected
    assert list(environ) == list(expected)  # the same order too


@pytest.mark.parametrize("prefix", wsgi_codec.RESERVED_PREFIXES)
def test_environ_from_params_declines_each_reserved_prefix_in_any_case(
    lane: ModuleType, prefix: str
) -> None:
    for name in (prefix, prefix.upper() + "x", prefix.title() + "y"):
        params = {b"PATH_INFO": b"/", name.encode(): b"forged", b"HTTP_HOST": b"h"}
        # twice: a name once declined is still declined (reserved names are never cached)
        assert lane.environ_from_params({}, params, DROPPED) is None
        assert lane.environ_from_params({}, params, DROPPED) is None
    without_dot = {prefix[:-1].encode(): b"fine"}
    assert lane.environ_from_params({}, without_dot, DROPPED) == {prefix[:-1]: "fine"}


def test_a_flood_of_names_keeps_the_environ_right(lane: ModuleType) -> None:
    # More names than the cache holds (it is cleared when full), and names too long for it.
    for round_ in range(3):
        params = {f"HTTP_X_{round_}_{i}".encode(): str(i).encode() for i in range(700)}
        params[b"L" * 1000] = b"long"
        params[b"HTTP_PROXY"] = b"dropped"
        environ = lane.environ_from_params({}, params, DROPPED)
        assert environ == wsgi_codec.environ_from_params_py({}, params, DROPPED)
    # Another set of dropped names gets its own verdicts.
    params = {b"PATH_INFO": b"/", b"HTTP_PROXY": b"kept"}
    assert lane.environ_from_params({}, params, frozenset({"PATH_INFO"})) == {"HTTP_PROXY": "kept"}
    assert lane.environ_from_params({}, params, DROPPED) == {"PATH_INFO": "/"}


def flood(lane: ModuleType, tag: str) -> None:
    """10,000 short names and 5,000 long ones (8 KiB), 150 by 150."""
    for batch in range(100):
        params = {f"HTTP_{tag}_{batch}_{i}".encode(): b"" for i in range(100)}
        params.update({f"HTTP_{tag}_{batch}_{i}_".encode() + b"N" * 8192: b"" for i in range(50)})
        lane.environ_from_params({}, params, DROPPED)


def test_a_flood_of_names_takes_bounded_memory(lane: ModuleType) -> None:
    # Names come from the peer's request headers. The cache keeps at most 512 short ones
    # (about 100 KiB); without its bounds this flood would keep several MiB.
    flood(lane, "FIRST")
    gc.collect()
    tracemalloc.start()
    try:
        flood(lane, "SECOND")
        gc.collect()
        kept = tracemalloc.take_snapshot().traces
    finally:
        tracemalloc.stop()
    assert sum(trace.size for trace in kept) < 1 << 20


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(({}, [(b"A", b"b")], DROPPED), id="params a list"),
        pytest.param(({}, {"A": b"b"}, DROPPED), id="a str name"),
        pytest.param(({}, {b"A": "b"}, DROPPED), id="a str value"),
        pytest.param(({}, {b"A": b"b"}, set(DROPPED)), id="dropped a set"),
        pytest.param(({}, {b"A": b"b"}), id="two arguments"),
    ],
)
def test_environ_from_params_refuses_wrong_types(lane: ModuleType, args: tuple[Any, ...]) -> None:
    with pytest.raises(TypeError):
        lane.environ_from_params(*args)


T = TypeVar("T")


def rarely(draw: st.DrawFn, ordinary: st.SearchStrategy[T], odd: st.SearchStrategy[T]) -> T:
    """From ``ordinary`` three times in four, else from ``odd``: most heads stay valid (the
    lane's work), and the rest are bent in one place or a few."""
    return draw(odd if draw(st.integers(0, 3)) == 0 else ordinary)


TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
# Text with control characters (HTAB, the one allowed, CR, LF, NUL, VT, ESC, DEL), latin-1
# (C1 controls are obs-text, allowed) and a few characters beyond it (U+0100, the euro, an
# emoji).
TEXT = st.text(
    st.sampled_from("aZ09 -:;\t\r\n\x00\x0b\x1b\x1f\x7f\x80\x85\xe9\xff\u0100\u20ac\U0001f600"),
    max_size=12,
)
#: what a field value may hold (RFC 9110 5.5): no control character but HTAB
FIELD_CONTROLS = "".join(chr(c) for c in [*range(0x09), *range(0x0A, 0x20), 0x7F])
VALID_NAMES = st.one_of(
    st.text(st.sampled_from(TOKEN_CHARS), min_size=1, max_size=16),
    st.sampled_from(
        ["Content-Length", "content-length", "CONTENT-LENGTH", "Content-Lengths", "content-lengt"]
    ),
)
VALID_VALUES = st.text(
    st.characters(max_codepoint=0xFF, exclude_characters=FIELD_CONTROLS), max_size=16
)
#: a code alone, or a code and a reason phrase (which holds what a field value may)
VALID_STATUSES = st.one_of(
    st.integers(100, 999).map(str),
    st.builds("{} {}".format, st.integers(100, 999), VALID_VALUES),
)
ODD_NAMES = st.one_of(
    TEXT,
    st.builds(Text, st.sampled_from(["X-A", "Bad Name"])),
    st.builds(Shouting, st.sampled_from(["x-a"])),
    st.sampled_from([b"X-A", None, 1, "", "Bad Name", "X:", "\xe9"]),
)
ODD_VALUES = st.one_of(
    TEXT,
    st.builds(Text, st.sampled_from(["v", "a\nb"])),
    st.builds(Shouting, st.sampled_from(["v"])),
    st.sampled_from([b"v", None, 5, "a\r\nX: y", "\u0100"]),
)
ORDINARY_ITEMS = st.tuples(VALID_NAMES, VALID_VALUES)


class Pair(tuple[Any, ...]):
    """A tuple subclass: the Python accepts it as a header."""


class HeaderList(list[Any]):
    """A list subclass that iterates its own way, as the Python does: backwards."""

    def __iter__(self) -> Iterator[Any]:
        return reversed(self)


@st.composite
def header_items(draw: st.DrawFn) -> Any:
    name = rarely(draw, VALID_NAMES, ODD_NAMES)
    value = rarely(draw, VALID_VALUES, ODD_VALUES)
    return rarely(
        draw,
        st.just((name, value)),
        st.sampled_from([[name, value], Pair((name, value)), (name,), (name, value, value), None]),
    )


@st.composite
def heads(draw: st.DrawFn) -> tuple[Any, Any, Any]:
    """(status, headers, content_length) for encode_head: mostly valid, some bent."""
    status = rarely(
        draw,
        VALID_STATUSES,
        st.one_of(
            st.builds(lambda code, text: f"{code} {text}", st.integers(100, 999), TEXT),
            st.sampled_from(["200\n", "200 OK\n", "200 OK\r", "20", "2000", "200OK", "099 x"]),
            st.sampled_from([" 200", "\u0662\u0660\u0660 OK", "200\t", "200 \x00", "200 \x85"]),
            st.builds(Text, st.sampled_from(["200 OK", "200\n"])),
            st.builds(Shouting, st.sampled_from(["200 ok"])),
            st.sampled_from([b"200 OK", None, 200]),
        ),
    )
    items = draw(st.lists(header_items(), max_size=5))
    headers = draw(st.sampled_from([list, list, tuple, HeaderList]))(items)
    content_length = rarely(
        draw,
        st.one_of(st.none(), st.integers(0, 2**40)),
        st.one_of(
            st.integers(-(2**70), 2**70),
            st.sampled_from([-1, 2**63 - 1, -(2**63), 2**63, -(2**63) - 1, 10**30, True]),
        ),
    )
    return status, headers, content_length


def python_head(status: Any, headers: Any, content_length: Any) -> bytes | None:
    try:
        return wsgi_codec.encode_head_py(status, headers, content_length)
    except InvalidResponse:
        return None


def ordinary(status: Any, headers: Any, content_length: Any) -> bool:
    """Exact built-in types only, and a length that fits in 64 bits: the lane's own cases."""
    return (
        type(status) is str
        and type(headers) in (list, tuple)
        and all(type(item) is tuple and all(type(part) is str for part in item) for item in headers)
        and (
            content_length is None
            or (type(content_length) is int and -(2**63) <= content_length < 2**63)
        )
    )


@given(args=heads())
@settings(max_examples=2000, deadline=None)
def test_encode_head_is_the_python_or_declines(
    lane: ModuleType, args: tuple[Any, Any, Any]
) -> None:
    expected = python_head(*args)
    head = lane.encode_head(*args)
    if expected is None:
        assert head is None  # the Python raises: it must be the one to answer
    elif ordinary(*args):
        assert head == expected
    else:
        assert head in (None, expected)


@given(
    status=VALID_STATUSES,
    headers=st.lists(ORDINARY_ITEMS, max_size=6),
    content_length=st.one_of(st.none(), st.integers(0, 2**40)),
)
@settings(max_examples=500, deadline=None)
def test_encode_head_takes_every_ordinary_head(
    lane: ModuleType, status: str, headers: list[tuple[str, str]], content_length: int | None
) -> None:
    # Otherwise the test above would pass with a lane that always declines.
    expected = python_head(status, headers, content_length)
    assert expected is not None
    assert lane.encode_head(status, headers, content_length) == expected


def test_encode_head_wants_three_arguments(lane: ModuleType) -> None:
    with pytest.raises(TypeError):
        lane.encode_head("200 OK", [])


# --- the rules are wsgi_codec's --------------------------------------------------------------


def test_the_lane_answers_none_until_it_has_the_rules() -> None:
    fresh = fresh_lane(LANE)
    params = {b"PATH_INFO": b"/"}
    assert fresh.environ_from_params({}, params, DROPPED) is None
    assert fresh.encode_head("200 OK", [("X-A", "b")], 5) is None
    wsgi_codec.give_header_rules(fresh._set_header_rules)
    assert fresh.environ_from_params({}, params, DROPPED) == {"PATH_INFO": "/"}
    assert fresh.encode_head("200 OK", [("X-A", "b")], 5) == wsgi_codec.encode_head_py(
        "200 OK", [("X-A", "b")], 5
    )


def test_the_lane_follows_the_rules_it_is_given() -> None:
    """No rule of its own: with other rules, the answers change with them."""
    fresh = fresh_lane(LANE)
    # names without "-", values without "x", and params named http_* reserved
    fresh._set_header_rules(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"x", (b"http_",))
    assert fresh.encode_head("200 OK", [("TYPE", "html")], None) is not None
    assert fresh.encode_head("200 OK", [("CONTENT-TYPE", "html")], None) is None
    assert fresh.encode_head("200 OK", [("TYPE", "xml")], None) is None
    assert fresh.encode_head("200 Ox", [], None) is None
    assert fresh.encode_head("200 O\n", [], None) is not None
    assert fresh.environ_from_params({}, {b"wsgi.input": b"x"}, DROPPED) == {"wsgi.input": "x"}
    assert fresh.environ_from_params({}, {b"HTTP_HOST": b"x"}, DROPPED) is None


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("tchar", b"", ()), id="token characters a str"),
        pytest.param((b"a", bytearray(b""), ()), id="controls a bytearray"),
        pytest.param((b"a", b"", [b"wsgi."]), id="prefixes a list"),
        pytest.param((b"a", b"", ("wsgi.",)), id="a prefix a str"),
        pytest.param((b"a", b"", (b"",)), id="an empty prefix"),
        pytest.param((b"a", b""), id="two arguments"),
    ],
)
def test_set_header_rules_refuses_wrong_types(args: tuple[Any, ...]) -> None:
    fresh = fresh_lane(LANE)
    with pytest.raises(TypeError):
        fresh._set_header_rules(*args)
    assert fresh.encode_head("200 OK", [], None) is None  # still no rules


def test_every_reserved_prefix_has_a_dot() -> None:
    # The Python looks for a reserved prefix only in names with a dot (the cheaper test
    # first); the lane looks in every name. The two agree while each prefix has one.
    assert all("." in prefix for prefix in wsgi_codec.RESERVED_PREFIXES)


# --- no leaks -------------------------------------------------------------------------------


def calls(lane: ModuleType) -> Iterator[Call]:
    """Calls through every path of the lane: ordinary, declined, refused."""
    long_name = b"L" * 200
    params = {b"PATH_INFO": b"/hello", b"HTTP_PROXY": b"x", long_name: b"\xff" * 30}
    yield lane.environ_from_params, (MappingProxyType({}), params, DROPPED)
    yield lane.environ_from_params, ({}, {**params, b"wsgi.input": b"forged"}, DROPPED)
    yield lane.environ_from_params, ({"base": object()}, params, DROPPED)
    yield lane.environ_from_params, ({}, {b"A": "not bytes"}, DROPPED)
    headers = [("Content-Type", "text/plain"), ("X-A", "\xe9" * 20)]
    yield lane.encode_head, ("200 OK", headers, 10**15)
    yield lane.encode_head, ("200 OK", (("Content-Length", "3"),), None)
    yield lane.encode_head, ("200 OK", [*headers, ("X-B", "a\nb")], 5)
    yield lane.encode_head, (Text("200 OK"), headers, 2**80)
    rules: list[tuple[bytes, bytes, tuple[bytes, ...]]] = []
    wsgi_codec.give_header_rules(lambda *given: rules.append(given))
    yield lane._set_header_rules, rules[0]
    yield lane._set_header_rules, (b"", b"", ("not bytes",))


def test_calls_leave_no_reference_and_no_memory_behind(lane: ModuleType) -> None:
    assert_calls_leave_nothing_behind(calls(lane))


@pytest.mark.parametrize("builder", ["C", "Python"])
def test_a_known_name_is_the_apps_own_constant_in_the_environ_and_a_chosen_one_is_not(
    lane: ModuleType, builder: str
) -> None:
    """A param of a name apps look up (KNOWN_NAMES) is keyed by the interned str, the very
    object a constant in the app's code is, in the table of verdicts the whole request's
    scan decodes by as well; a name the web server made up is decoded afresh, never
    interned (it would stay for good)."""
    made_up = "HTTP_X_" + "Q" * 9  # (built at run time: no constant of the test's to match)
    params = {b"PATH_INFO": b"/", b"HTTP_HOST": b"h", made_up.encode(): b"1"}
    if builder == "C":
        lane._name_table(frozenset({"other"}))  # its verdicts cleared (another dropped set)
        build = lane.environ_from_params
        names = lane._name_table(DROPPED)
    else:
        wsgi_codec.environ_names_py(frozenset({"other"}))
        build = wsgi_codec.environ_from_params_py
        names = wsgi_codec.environ_names_py(DROPPED)
    build({}, params, DROPPED)  # the first: the verdicts made
    environ = build({}, params, DROPPED)
    assert environ == {"PATH_INFO": "/", "HTTP_HOST": "h", made_up: "1"}
    keys = {key: key for key in environ}
    assert keys["PATH_INFO"] is "PATH_INFO"  # noqa: F632 (identity is the point)
    assert keys["HTTP_HOST"] is "HTTP_HOST"  # noqa: F632
    assert names[b"PATH_INFO"] is "PATH_INFO"  # noqa: F632
    assert names[made_up.encode()] == made_up
    assert names[made_up.encode()] is not sys.intern(made_up)
