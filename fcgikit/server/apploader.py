"""Import the WSGI app named on the command line: ``module:attr`` or ``module:factory()``.

Import failures are the most common deployment error ("premature end of headers"), so the
message carries what is needed to fix it: the ImportError, the interpreter and ``sys.path``.

The second most common is naming a factory without calling it (``myapp:create_app``): it
imports fine and is callable, and then every request is a 500 because the server calls it
with ``(environ, start_response)``. So what is loaded is checked the way the server will
call it: an object whose signature cannot take two positional arguments is refused at start.
Nothing else is judged: classes (PEP 3333 allows one as the app), instances with
``__call__`` (Flask's app), ``functools.partial`` and ``*args`` all bind, and an object
whose signature Python cannot tell (a C function) is given the benefit of the doubt.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import os
import sys
from typing import TYPE_CHECKING, Any, cast

from fcgikit.errors import ConfigError
from fcgikit.server.logs import enable_fcgikit_loggers

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication


def _signature(target: Any) -> inspect.Signature | None:
    """``target``'s signature without annotations (for messages); None if Python cannot
    tell it."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    empty = inspect.Parameter.empty
    return signature.replace(
        parameters=[p.replace(annotation=empty) for p in signature.parameters.values()],
        return_annotation=empty,
    )


def _unbindable(target: Any, *args: Any, **kwargs: Any) -> str | None:
    """How ``target`` looks (``create_app(config=None)``) when it cannot be called with
    these arguments; None when it can, or when its signature cannot be known."""
    signature = _signature(target)
    if signature is None:
        return None
    try:
        signature.bind(*args, **kwargs)
    except TypeError:
        name = getattr(target, "__name__", type(target).__name__)
        return f"the class {name}{signature}" if inspect.isclass(target) else f"{name}{signature}"
    return None


def not_a_wsgi_signature(app: Any) -> str | None:
    """How ``app`` looks (``create_app(config=None)``) when the server could not call it
    with ``(environ, start_response)``; None when it could, or cannot be told."""
    return _unbindable(app, {}, None)


def _call_factory(expression: str, target: Any, where: str) -> Any:
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
    wrong = _unbindable(target, *args, **kwargs)
    if wrong is not None:
        raise ConfigError(f"cannot call {where}: it is {wrong}")
    return target(*args, **kwargs)


def enter_app_directory(directory: str | None) -> None:
    """Where ``fcgikit serve`` imports APP from, the one rule: change to ``directory``
    (--chdir) when given, and put the working directory first on ``sys.path`` unless it is
    there already (by name, or as ``''``)."""
    if directory:
        try:
            os.chdir(directory)
        except OSError as exc:
            raise ConfigError(f"cannot change to {directory}: {exc.strerror}") from exc
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())


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
    where = f"{module_name}:{attr.strip()}"
    called = "(" in attr
    if called:
        if not callable(target):
            raise ConfigError(f"{module_name}:{name} is not callable, so it cannot be a factory")
        target = _call_factory(attr.strip(), target, where)
    enable_fcgikit_loggers()  # the app's import or factory may have set up logging
    what = f"{where} returned" if called else f"{where} is"
    if not callable(target):
        raise ConfigError(
            f"{what} a {type(target).__name__}, not a WSGI application "
            "(a callable taking environ and start_response)"
        )
    wrong = not_a_wsgi_signature(target)
    if wrong is not None:
        hint = "" if called else f": if it makes the app, name the call: '{module_name}:{name}()'"
        raise ConfigError(
            f"{what} {wrong}, which cannot be called with (environ, start_response){hint}"
        )
    return cast("WSGIApplication", target)
