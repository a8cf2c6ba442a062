"""Frozen dataclasses whose methods are written once, here, instead of generated per class.

``@dataclass(frozen=True, slots=True)`` writes the source of an ``__init__``, a repr, an
equality, a hash and a refusing ``__setattr__`` and ``__delattr__`` for each class, a line a
field, and compiles it; and every process that serves imports a few dozen such classes at
start-up (the protocol's events, the settings, the addresses), where that compiling was
most of what their modules cost (benchmarks/RESULTS.md, "Start-up").
:func:`frozen_dataclass` gives a class the same methods, driven by its fields, and lets
``@dataclass`` make only the slots and the fields, so that ``dataclasses.fields``,
``replace``, ``asdict`` and ``match`` work as they did. A class on a hot path (an event)
writes its ``__init__`` and ``__slots__`` itself, for speed; the others get the generic
``__init__``, which takes the same arguments as the generated one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import MISSING, FrozenInstanceError
from typing import Any, Final, TypeVar, dataclass_transform

_C = TypeVar("_C")
#: how an ``__init__`` stores a field past the ``__setattr__`` that refuses to
set_field = object.__setattr__


class _Layout:
    """What the methods need of a class's fields, in field order (a plain class: a named
    tuple's class costs a compiled ``__new__`` at every start)."""

    __slots__ = ("arguments", "compared", "derived", "shown")

    def __init__(self, fields: tuple[dataclasses.Field[Any], ...]) -> None:
        #: ``__init__``'s arguments: (name, default, default factory), MISSING where none
        self.arguments: Final = tuple(
            (f.name, f.default, f.default_factory) for f in fields if f.init
        )
        #: the fields ``__init__`` does not take, set to their default before ``__post_init__``
        self.derived: Final = tuple(
            (f.name, f.default, f.default_factory) for f in fields if not f.init
        )
        #: what equality and the hash look at
        self.compared: Final = tuple(f.name for f in fields if f.compare)
        #: what the repr shows
        self.shown: Final = tuple(f.name for f in fields if f.repr)


def _init(record: Any, *args: Any, **kwargs: Any) -> None:
    """The generated ``__init__``: the fields as arguments, in order or by name."""
    layout: _Layout = record._frozen_layout
    called = type(record).__name__ + "()"
    if len(args) > len(layout.arguments):
        raise TypeError(f"{called} takes {len(layout.arguments)} positional arguments")
    for index, (name, default, factory) in enumerate(layout.arguments):
        if index < len(args):
            if name in kwargs:
                raise TypeError(f"{called} got multiple values for argument {name!r}")
            value = args[index]
        elif name in kwargs:
            value = kwargs.pop(name)
        elif default is not MISSING:
            value = default
        elif factory is not MISSING:
            value = factory()
        else:
            raise TypeError(f"{called} missing required argument {name!r}")
        set_field(record, name, value)
    if kwargs:
        raise TypeError(f"{called} got an unexpected keyword argument {next(iter(kwargs))!r}")
    for name, default, factory in layout.derived:
        set_field(record, name, default if factory is MISSING else factory())
    post_init = getattr(record, "__post_init__", None)
    if post_init is not None:
        post_init()


def _compared(record: Any) -> tuple[Any, ...]:
    return tuple([getattr(record, name) for name in record._frozen_layout.compared])


def _repr(record: Any) -> str:
    listed = ", ".join(f"{name}={getattr(record, name)!r}" for name in record._frozen_layout.shown)
    return f"{type(record).__qualname__}({listed})"


def _eq(record: Any, other: object) -> object:
    if other.__class__ is record.__class__:
        return _compared(record) == _compared(other)
    return NotImplemented


def _hash(record: Any) -> int:
    return hash(_compared(record))


def _refuse_assignment(record: Any, name: str, value: object = None) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _refuse_deletion(record: Any, name: str) -> None:
    raise FrozenInstanceError(f"cannot delete field {name!r}")


def _getstate(record: Any) -> list[Any]:
    return [getattr(record, f.name) for f in dataclasses.fields(record)]


def _setstate(record: Any, state: list[Any]) -> None:
    for f, value in zip(dataclasses.fields(record), state, strict=True):
        set_field(record, f.name, value)


class _Made:
    """A default made by a factory, as the generated ``__init__``'s signature shows it."""

    def __repr__(self) -> str:
        return "<factory>"


def _shown_default(default: Any, factory: Any) -> Any:
    import inspect

    if default is not MISSING:
        return default
    return inspect.Parameter.empty if factory is MISSING else _Made()


class _Signature:
    """``inspect.signature`` of a class with the generic ``__init__`` (the API docs show
    it), made when asked."""

    def __get__(self, record: object, cls: Any) -> Any:
        import inspect

        annotations = cls.__annotations__
        return inspect.Signature(
            [
                inspect.Parameter(
                    name,
                    inspect.Parameter.POSITIONAL_OR_KEYWORD,
                    default=_shown_default(default, factory),
                    annotation=annotations.get(name, inspect.Parameter.empty),
                )
                for name, default, factory in cls._frozen_layout.arguments
            ],
            return_annotation=None,
        )


_METHODS = {
    "__repr__": _repr,
    "__eq__": _eq,
    "__hash__": _hash,
    "__setattr__": _refuse_assignment,
    "__delattr__": _refuse_deletion,
    "__getstate__": _getstate,
    "__setstate__": _setstate,
}


# for type checkers: a frozen dataclass
@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def frozen_dataclass(cls: type[_C]) -> type[_C]:
    """``cls`` as ``@dataclass(frozen=True, slots=True)`` makes it (see the module docstring).
    A class that declares its ``__slots__`` and ``__init__`` keeps them; its ``__init__``
    stores each field with :data:`set_field`."""
    own_init = "__init__" in cls.__dict__
    methods = _METHODS if own_init else {**_METHODS, "__init__": _init}
    for name, method in methods.items():
        setattr(cls, name, method)
    slots = "__slots__" not in cls.__dict__
    made: Any = dataclasses.dataclass(init=False, repr=False, eq=False, slots=slots)(cls)
    made._frozen_layout = _Layout(dataclasses.fields(made))
    if not own_init:
        made.__signature__ = _Signature()
    return made  # type: ignore[no-any-return]
