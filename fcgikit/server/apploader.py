"""Import the WSGI app named on the command line: ``module:attr`` or ``module:factory()``.

Import failures are the most common deployment error ("premature end of headers"), so the
message carries what is needed to fix it: the ImportError, the interpreter and ``sys.path``.
"""

from __future__ import annotations

import ast
import importlib
import sys
from typing import TYPE_CHECKING, Any, cast

from fcgikit.errors import ConfigError

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def _call_factory(expression: str, target: Any) -> Any:
    try:
        call = ast.parse(expression, mode="eval").body
    except SyntaxError as exc:
        raise ConfigError(f"cannot read {expression!r}: expected name or name(args)") from exc
    if not isinstance(call, ast.Call):
        raise ConfigError(f"cannot read {expression!r}: expected name or name(args)")
    try:
        args = [ast.literal_eval(arg) for arg in call.args]
        kwargs = {kw.arg: ast.literal_eval(kw.value) for kw in call.keywords if kw.arg}
    except ValueError as exc:
        raise ConfigError(f"factory arguments in {expression!r} must be literals") from exc
    return target(*args, **kwargs)


def load_app(spec: str) -> WSGIApplication:
    """``package.module:app``, ``package.module:create_app()``; ``package.module`` alone
    looks for ``app`` then ``application``."""
    module_name, _, attr = spec.partition(":")
    if not module_name:
        raise ConfigError(f"no module in {spec!r}: expected module:attr or module:factory()")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        path = "\n  ".join(repr(p) for p in sys.path)
        raise ConfigError(
            f"cannot import {module_name!r}: {exc}\n"
            f"python: {sys.executable}\n"
            f"sys.path:\n  {path}\n"
            "Run from the app's directory, pass --chdir DIR, or install the app into this "
            "interpreter's environment."
        ) from exc
    if not attr:
        for candidate in ("app", "application"):
            if hasattr(module, candidate):
                attr = candidate
                break
        else:
            raise ConfigError(
                f"module {module_name!r} has neither 'app' nor 'application'; "
                f"name it: {module_name}:NAME"
            )
    name = attr.partition("(")[0].strip()
    if not name.isidentifier():
        raise ConfigError(f"{attr!r} is not a Python name")
    try:
        target = getattr(module, name)
    except AttributeError:
        raise ConfigError(f"module {module_name!r} has no attribute {name!r}") from None
    if "(" in attr:
        if not callable(target):
            raise ConfigError(f"{module_name}:{name} is not callable, so it cannot be a factory")
        target = _call_factory(attr.strip(), target)
    if not callable(target):
        raise ConfigError(
            f"{module_name}:{attr} is a {type(target).__name__}, not a WSGI application "
            "(a callable taking environ and start_response)"
        )
    return cast("WSGIApplication", target)
