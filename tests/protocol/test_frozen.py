"""frozen_dataclass makes what ``@dataclass(frozen=True, slots=True)`` makes of the same class
body: the same arguments, repr, equality, hash, errors, pickling and dataclass functions."""

from __future__ import annotations

import copy
import dataclasses
import inspect
import pickle
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any

import pytest

from fcgikit.protocol.frozen import frozen_dataclass


def _body() -> dict[str, Any]:
    """A class body with each kind of field: required, defaulted, a factory, not compared,
    not in ``__init__``, and a ``__post_init__`` that validates and derives."""

    def __post_init__(self: Any) -> None:
        if self.port < 0:
            raise ValueError("negative port")
        object.__setattr__(self, "label", f"{self.host}:{self.port}")

    return {
        "__annotations__": {
            "host": "str",
            "port": "int",
            "tags": "tuple[str, ...]",
            "extra": "dict[str, int]",
            "counter": "object",
            "label": "str",
        },
        "port": 9000,
        "tags": (),
        "extra": field(default_factory=dict),
        "counter": field(default=None, compare=False),
        "label": field(init=False, default=""),
        "__post_init__": __post_init__,
        "__doc__": "An address.",
    }


# module-level, so that pickle finds them by name
Generated = dataclass(frozen=True, slots=True)(type("Generated", (), _body()))
Written = frozen_dataclass(type("Written", (), _body()))

BOTH = pytest.mark.parametrize("cls", [Generated, Written], ids=["generated", "written"])


def outcome(call: Any) -> object:
    """What a call gives, or the type and message of what it raised."""
    try:
        return call()
    except Exception as error:  # the exception is the outcome compared
        return (type(error), str(error))


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        (("a",), {}),
        (("a", 80, ("x",)), {"extra": {"k": 1}}),
        ((), {"host": "a", "port": 1}),
        ((), {}),
        (("a", 1, (), {}, None, "too many"), {}),
        (("a",), {"host": "b"}),
        (("a",), {"colour": "red"}),
        (("a",), {"label": "given"}),
        (("a", -1), {}),
    ],
)
def test_the_same_arguments_make_the_same_record(
    args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    generated = outcome(lambda: Generated(*args, **kwargs))
    written = outcome(lambda: Written(*args, **kwargs))
    if isinstance(generated, tuple):  # the same error; Python words some messages its own way
        assert isinstance(written, tuple)
        assert written[0] is generated[0]
    else:
        assert repr(written).replace("Written", "Generated") == repr(generated)


@BOTH
def test_frozen_compared_hashed_and_shown_like_a_dataclass(cls: Any) -> None:
    record = cls("a", 80, counter=object())
    assert repr(record) == (
        f"{cls.__name__}(host='a', port=80, tags=(), extra={{}}, counter="
        + repr(record.counter)
        + ", label='a:80')"
    )
    assert record == cls("a", 80, counter="other")  # counter is not compared
    assert record != cls("a", 81)
    assert record.__eq__("a:80") is NotImplemented
    with pytest.raises(TypeError):
        hash(record)  # the dict field
    assert hash(cls("a", 80, extra=None)) == hash(cls("a", 80, extra=None))
    with pytest.raises(FrozenInstanceError):
        record.port = 81
    with pytest.raises(FrozenInstanceError):
        del record.port
    with pytest.raises(AttributeError):
        record.__dict__  # noqa: B018 (slots: no instance dict)
    assert cls("a").extra is not cls("a").extra  # the factory runs for each


@BOTH
def test_dataclass_functions_copies_and_pickles(cls: Any) -> None:
    record = cls("a", 80, ("x",), {"k": 1})
    assert [f.name for f in dataclasses.fields(cls)] == [
        "host",
        "port",
        "tags",
        "extra",
        "counter",
        "label",
    ]
    assert cls.__match_args__ == ("host", "port", "tags", "extra", "counter")
    changed = dataclasses.replace(record, port=81)
    assert (changed.port, changed.label) == (81, "a:81")
    assert dataclasses.asdict(record)["extra"] == {"k": 1}
    assert copy.copy(record) == record and copy.deepcopy(record) == record
    assert pickle.loads(pickle.dumps(record)) == record
    assert str(inspect.signature(cls)) == str(inspect.signature(Generated))
