"""MountFix on the request targets that trip path handling up."""

from __future__ import annotations

from urllib.parse import quote_from_bytes

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fcgikit.middleware import MountFix

from .helpers import ABSENT, Recorder, call, environ


def fixed(request_uri: str, mount: str = "/app", **options: str) -> tuple[str, Recorder]:
    app = Recorder()
    status, _ = call(MountFix(app, mount, **options), environ(REQUEST_URI=request_uri))  # type: ignore[arg-type]
    return status, app


@pytest.mark.parametrize(
    ("request_uri", "split"),
    [
        pytest.param("/app/foo/bar%20baz?x=1", ("/app", "/foo/bar baz"), id="percent-decoded"),
        pytest.param("/app/a%3Fb?x=1", ("/app", "/a?b"), id="%3F stays in the path"),
        pytest.param("/app/100%25", ("/app", "/100%"), id="%25 decoded once"),
        pytest.param("/app/%252F", ("/app", "/%2F"), id="%252F is not an encoded slash"),
        pytest.param("/app/caf%C3%A9", ("/app", "/caf\xc3\xa9"), id="UTF-8 as latin-1"),
        pytest.param("/app/caf\xc3\xa9", ("/app", "/caf\xc3\xa9"), id="raw UTF-8 bytes"),
        pytest.param("/app/%FF%FE", ("/app", "/\xff\xfe"), id="invalid UTF-8 kept"),
        pytest.param("/app/\u20ac", ("/app", "/\xe2\x82\xac"), id="non-PEP-3333 text"),
        pytest.param("/app//a//b", ("/app", "/a/b"), id="double slashes merged"),
        pytest.param("//app/a", ("/app", "/a"), id="leading double slash"),
        pytest.param("/app/./a/.", ("/app", "/a/"), id="dot segments"),
        pytest.param("/app/a/b/..", ("/app", "/a/"), id="dot-dot at the end"),
        pytest.param("/../../app/a", ("/app", "/a"), id="dot-dot above the root"),
        pytest.param("/app/%2e%2E/app/x", ("/app", "/x"), id="encoded dot-dot"),
        pytest.param("/app", ("/app", ""), id="the mount itself"),
        pytest.param("/app/", ("/app", "/"), id="the mount with a slash"),
        pytest.param("/app?x=/y?z", ("/app", ""), id="query with slash and question mark"),
        pytest.param("/app/a?next=/b?c=d#f", ("/app", "/a"), id="query after a path"),
        pytest.param("/app/a#frag", ("/app", "/a"), id="fragment"),
        pytest.param("/app/%zz", ("/app", "/%zz"), id="bad escape kept"),
        pytest.param("http://example.com/app/a?x", ("/app", "/a"), id="absolute form"),
    ],
)
def test_split(request_uri: str, split: tuple[str, str]) -> None:
    status, app = fixed(request_uri)
    assert status == "200 OK"
    assert app.split == split


@pytest.mark.parametrize(
    ("request_uri", "split"),
    [
        ("", ("", "/")),
        ("?x=1", ("", "/")),
        ("/", ("", "/")),
        ("/../..", ("", "/")),
        ("http://example.com", ("", "/")),
        ("/x/../admin", ("", "/admin")),
    ],
)
def test_split_at_the_root(request_uri: str, split: tuple[str, str]) -> None:
    status, app = fixed(request_uri, mount="")
    assert (status, app.split) == ("200 OK", split)


@pytest.mark.parametrize("mount", ["/app/", "/app//", "/app"])
def test_mount_with_trailing_slash(mount: str) -> None:
    app = Recorder()
    call(MountFix(app, mount), environ(REQUEST_URI="/app/x"))
    assert app.split == ("/app", "/x")


@pytest.mark.parametrize("mount", ["", "/"])
def test_root_mount_spellings(mount: str) -> None:
    app = Recorder()
    call(MountFix(app, mount), environ(REQUEST_URI="/x"))
    assert app.split == ("", "/x")


def test_non_ascii_mount_matches_the_encoded_path() -> None:
    app = Recorder()
    call(MountFix(app, "/café"), environ(REQUEST_URI="/caf%C3%A9/x"))
    assert app.split == ("/caf\xc3\xa9", "/x")
    status, body = call(MountFix(app, "/café"), environ(REQUEST_URI="/th%C3%A9/x"))
    assert status == "404 Not Found"
    assert "the path '/thé/x' is outside the mount '/café'" in body.decode()


@pytest.mark.parametrize(
    "request_uri",
    [
        pytest.param("/other", id="elsewhere"),
        pytest.param("/appx/y", id="same leading letters"),
        pytest.param("/app/../admin", id="dot-dot out of the mount"),
        pytest.param("/app/%2e%2e/admin", id="encoded dot-dot out of the mount"),
        pytest.param("/App/x", id="case differs"),
    ],
)
def test_outside_the_mount_is_a_clear_404(request_uri: str) -> None:
    app = Recorder()
    env = environ(REQUEST_URI=request_uri)
    status, body = call(MountFix(app, "/app"), env)
    assert status == "404 Not Found"
    assert b"outside the mount '/app'" in body
    assert app.environ is None
    assert env["wsgi.errors"].getvalue().count("\n") == 1


def test_refusal_without_wsgi_errors() -> None:
    env = environ(REQUEST_URI="/other")
    del env["wsgi.errors"]
    status, body = call(MountFix(Recorder(), "/app"), env)
    assert status == "404 Not Found"
    assert body.startswith(b"404 Not Found\n\n")


def test_nul_is_refused() -> None:
    status, app = fixed("/app/a%00.txt")
    assert status == "400 Bad Request"
    assert app.environ is None


def test_target_that_is_not_a_path_is_refused() -> None:
    status, _ = fixed("*", mount="")
    assert status == "400 Bad Request"


@pytest.mark.parametrize("request_uri", ["/app/a%2Fb", "/app/a%2fb"])
def test_encoded_slash_is_refused_by_default(request_uri: str) -> None:
    app = Recorder()
    status, body = call(MountFix(app, "/app"), environ(REQUEST_URI=request_uri))
    assert status == "404 Not Found"
    assert b"encoded_slash='decode'" in body


@pytest.mark.parametrize(
    ("encoded_slash", "request_uri", "status", "split"),
    [
        ("decode", "/app/a%2Fb", "200 OK", ("/app", "/a/b")),
        ("decode", "/app/x%2F..%2Fadmin", "200 OK", ("/app", "/admin")),
        ("decode", "/app%2F..%2Fadmin", "404 Not Found", None),
        ("keep", "/app/a%2fb", "200 OK", ("/app", "/a%2Fb")),
        ("keep", "/app/x%2F..%2Fadmin", "200 OK", ("/app", "/x%2F..%2Fadmin")),
        ("keep", "/app/c%C3%A9%2F%20", "200 OK", ("/app", "/c\xc3\xa9%2F ")),
        ("keep", "/app/%00", "400 Bad Request", None),
    ],
)
def test_encoded_slash_choices(
    encoded_slash: str, request_uri: str, status: str, split: tuple[str, str] | None
) -> None:
    got, app = fixed(request_uri, encoded_slash=encoded_slash)
    assert got == status
    if split is not None:
        assert app.split == split


@pytest.mark.parametrize(
    ("script_name", "path_info", "split"),
    [
        ("/app/x", ABSENT, ("/app", "/x")),
        ("/app", "/x//y/../z", ("/app", "/x/z")),
        ("", "", ("", "/")),
    ],
)
def test_without_request_uri_the_server_split_is_resplit(
    script_name: str, path_info: object, split: tuple[str, str]
) -> None:
    app = Recorder()
    mount = split[0]
    env = environ(REQUEST_URI=ABSENT, SCRIPT_NAME=script_name, PATH_INFO=path_info)
    call(MountFix(app, mount), env)
    assert app.split == split


def test_without_request_uri_a_nul_is_refused() -> None:
    env = environ(REQUEST_URI=ABSENT, SCRIPT_NAME="/app", PATH_INFO="/a\x00b")
    assert call(MountFix(Recorder(), "/app"), env)[0] == "400 Bad Request"


def test_changed_values_are_kept_and_others_left_alone() -> None:
    app = Recorder()
    env = environ(
        REQUEST_URI="/app/a%20b?q=1",
        SCRIPT_NAME="/app/a b",
        PATH_INFO=ABSENT,
        QUERY_STRING="q=1",
        DOCUMENT_URI="/app/a b",
    )
    call(MountFix(app, "/app"), env)
    assert app.environ is not None
    assert app.environ["fcgikit.orig"] == {"SCRIPT_NAME": "/app/a b", "PATH_INFO": None}
    assert app.environ["QUERY_STRING"] == "q=1"
    assert app.environ["DOCUMENT_URI"] == "/app/a b"
    assert app.environ["REQUEST_URI"] == "/app/a%20b?q=1"


def test_unchanged_values_are_not_recorded() -> None:
    app = Recorder()
    call(MountFix(app, "/app"), environ(REQUEST_URI="/app/x", SCRIPT_NAME="/app", PATH_INFO="/x"))
    assert app.environ is not None
    assert "fcgikit.orig" not in app.environ


@pytest.mark.parametrize(
    ("mount", "error"),
    [
        ("app", ValueError),
        ("/a//b", ValueError),
        ("/a/../b", ValueError),
        ("/a/./b", ValueError),
        ("/a?x=1", ValueError),
        (None, TypeError),
    ],
)
def test_bad_mounts_are_refused_at_startup(mount: object, error: type[Exception]) -> None:
    with pytest.raises(error, match="mount"):
        MountFix(Recorder(), mount)  # type: ignore[arg-type]


def test_bad_encoded_slash_is_refused_at_startup() -> None:
    with pytest.raises(ValueError, match="encoded_slash"):
        MountFix(Recorder(), "", encoded_slash="maybe")  # type: ignore[arg-type]


# Request targets built from the characters that matter to path handling.
targets = st.lists(
    st.sampled_from(
        [
            "/",
            "//",
            ".",
            "..",
            "%2e",
            "%2E%2e",
            "a",
            "b",
            "%20",
            "%C3%A9",
            "%FF",
            "%25",
            "%3F",
            "%2F",
            "?",
            "#",
            "%",
        ]
    ),
    max_size=12,
).map(lambda parts: "/" + "".join(parts))


@settings(max_examples=300, deadline=None)
@given(targets)
def test_result_is_normalized_and_stable(request_uri: str) -> None:
    status, app = fixed(request_uri, mount="", encoded_slash="decode")
    assert status == "200 OK"
    _, path_info = app.split
    assert path_info.startswith("/")
    segments = path_info.split("/")[1:]
    assert all(seg not in (".", "..") for seg in segments)
    assert all(segments[:-1])  # no empty segment except a trailing slash
    again = quote_from_bytes(path_info.encode("latin-1"), safe="/")
    assert fixed(again, mount="", encoded_slash="decode")[1].split == ("", path_info)


@settings(max_examples=200, deadline=None)
@given(targets)
def test_a_mount_only_moves_the_split(request_uri: str) -> None:
    _, at_root = fixed(request_uri, mount="", encoded_slash="decode")
    status, mounted = fixed("/app" + request_uri, mount="/app", encoded_slash="decode")
    if status == "200 OK":
        assert "".join(mounted.split) == "/app" + at_root.split[1]
    else:  # a ".." climbed out of /app
        assert ".." in request_uri.replace("%2e", ".").replace("%2E", ".")
