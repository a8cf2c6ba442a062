"""load_app: ``module:name`` and ``module:factory()``, and what cannot be a WSGI app fails at
start, with a message that says what to write instead."""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from fcgikit.errors import ConfigError
from fcgikit.server.apploader import load_app


def environ_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [])
    return [b"ok"]


class CallableApp:
    def __call__(self, environ: dict[str, Any], start_response: Any) -> list[bytes]:
        return environ_app(environ, start_response)


class ClassApp:
    """PEP 3333 allows a class as the app: each request makes an instance, the iterable."""

    def __init__(self, environ: dict[str, Any], start_response: Any) -> None:
        start_response("200 OK", [])

    def __iter__(self) -> Iterator[bytes]:
        yield b"ok"


def configured_app(greeting: str, environ: dict[str, Any], start_response: Any) -> list[bytes]:
    return environ_app(environ, start_response)


def create_app(test_config: dict[str, Any] | None = None) -> Any:
    """The Flask tutorial's factory."""
    return environ_app


def create_nothing() -> Any:
    return 42


def make_module() -> types.ModuleType:
    from flask import Flask

    module = types.ModuleType("loader_apps")
    module.__dict__.update(
        environ_app=environ_app,
        instance=CallableApp(),
        ClassApp=ClassApp,
        CallableApp=CallableApp,
        partial_app=functools.partial(configured_app, "hi"),
        flask_app=Flask("loader_apps"),
        flask_wsgi_app=Flask("loader_apps").wsgi_app,
        anything=lambda *args, **kwargs: [],
        builtin=print,  # no bad signature to find: let it be
        create_app=create_app,
        create_nothing=create_nothing,
        build=lambda: environ_app,
    )
    return module


@pytest.fixture(autouse=True)
def loader_apps() -> Iterator[None]:
    sys.modules["loader_apps"] = make_module()
    yield
    del sys.modules["loader_apps"]


@pytest.mark.parametrize(
    "name",
    [
        "environ_app",
        "instance",
        "ClassApp",
        "partial_app",
        "flask_app",
        "flask_wsgi_app",
        "anything",
        "builtin",
        "create_app()",
        "create_app({'TESTING': True})",
    ],
)
def test_what_can_be_called_with_environ_and_start_response_is_accepted(name: str) -> None:
    assert callable(load_app(f"loader_apps:{name}"))


@pytest.mark.parametrize(
    ("name", "message"),
    [
        pytest.param(
            "create_app",
            "loader_apps:create_app is create_app(test_config=None), which cannot be called "
            "with (environ, start_response): if it makes the app, name the call: "
            "'loader_apps:create_app()'",
            id="factory-without-parentheses",
        ),
        pytest.param(
            "build",
            "name the call: 'loader_apps:build()'",
            id="factory-without-arguments",
        ),
        pytest.param(
            "CallableApp",
            "loader_apps:CallableApp is the class CallableApp(), which cannot be called with "
            "(environ, start_response): if it makes the app, name the call: "
            "'loader_apps:CallableApp()'",
            id="class-instead-of-instance",
        ),
        pytest.param(
            "create_nothing()",
            "loader_apps:create_nothing() returned a int, not a WSGI application",
            id="factory-returning-no-app",
        ),
        pytest.param(
            "create_app(1, 2)",
            "cannot call loader_apps:create_app(1, 2)",
            id="factory-called-wrongly",
        ),
    ],
)
def test_what_cannot_be_a_wsgi_app_fails_at_start(name: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        load_app(f"loader_apps:{name}")
    assert message in str(raised.value)


def test_a_factory_returning_a_factory_is_named_as_such() -> None:
    sys.modules["loader_apps"].__dict__["outer"] = lambda: create_app
    with pytest.raises(ConfigError, match=r"loader_apps:outer\(\) returned create_app"):
        load_app("loader_apps:outer()")


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param(":app", "no module in ':app': expected module:attr", id="no module"),
        pytest.param(
            "loader_apps", "module 'loader_apps' has neither 'app' nor 'application'", id="no app"
        ),
        pytest.param("loader_apps:1st", "'1st' is not a Python name", id="not a name"),
        pytest.param(
            "loader_apps:missing", "module 'loader_apps' has no attribute 'missing'", id="missing"
        ),
        pytest.param(
            "loader_apps:forty_two()",
            "loader_apps:forty_two is not callable, so it cannot be a factory",
            id="a factory that is no function",
        ),
        pytest.param(
            "loader_apps:create_app(",
            "cannot read 'create_app(': expected name or name(args)",
            id="a call cut short",
        ),
        pytest.param(
            "loader_apps:create_app() + 1",
            "cannot read 'create_app() + 1': expected name or name(args)",
            id="more than a call",
        ),
        pytest.param(
            "loader_apps:create_app(open)",
            "factory arguments in 'create_app(open)' must be literals",
            id="a name as argument",
        ),
    ],
)
def test_a_spec_that_names_no_app_says_what_to_write(spec: str, message: str) -> None:
    sys.modules["loader_apps"].__dict__["forty_two"] = 42
    with pytest.raises(ConfigError) as raised:
        load_app(spec)
    assert message in str(raised.value)


def test_a_module_alone_serves_its_app_or_application() -> None:
    module = sys.modules["loader_apps"]
    module.__dict__["application"] = environ_app
    assert load_app("loader_apps") is environ_app
    module.__dict__["app"] = ClassApp
    assert load_app("loader_apps") is ClassApp  # app first


def test_an_app_that_cannot_be_imported_says_where_python_looked() -> None:
    with pytest.raises(ConfigError) as raised:
        load_app("fcgikit_test_no_such_module:app")
    message = str(raised.value)
    assert "cannot import 'fcgikit_test_no_such_module'" in message
    assert f"python: {sys.executable}" in message
    assert repr(sys.path[0]) in message
    assert "pass --chdir DIR" in message
