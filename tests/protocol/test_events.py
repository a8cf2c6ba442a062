"""The events are frozen dataclasses to whoever uses them, however they are declared: an app's
tests compare, hash, print, copy, pickle, ``match`` and ``dataclasses.replace`` them."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest

from fcgikit.protocol import (
    FilterData,
    FilterDataEnded,
    ProtocolStatus,
    RequestAborted,
    RequestEnded,
    RequestReceived,
    Role,
    StderrData,
    StdinData,
    StdinEnded,
    StdoutData,
    UnknownTypeReply,
    ValuesResult,
)

EXAMPLES = [
    RequestReceived(1, Role.RESPONDER, True, {b"A": b"1"}, frozenset({b"A"}), 9),
    StdinData(1, b"body"),
    StdinEnded(1),
    FilterData(2, b"file"),
    FilterDataEnded(2),
    RequestAborted(3),
    StdoutData(1, b"Status: 200 OK\r\n\r\n"),
    StderrData(1, b"oops"),
    RequestEnded(1, 0, ProtocolStatus.REQUEST_COMPLETE),
    ValuesResult({b"FCGI_MPXS_CONNS": b"0"}),
    UnknownTypeReply(11),
]


@pytest.mark.parametrize("event", EXAMPLES, ids=lambda event: type(event).__name__)
def test_an_event_behaves_as_a_frozen_dataclass(event: object) -> None:
    cls = type(event)
    names = [field.name for field in dataclasses.fields(event)]  # type: ignore[arg-type]
    values = [getattr(event, name) for name in names]
    assert dataclasses.is_dataclass(event)
    assert cls.__match_args__ == tuple(names)  # type: ignore[attr-defined]
    assert not hasattr(event, "__dict__")  # slotted
    shown = ", ".join(f"{name}={value!r}" for name, value in zip(names, values, strict=True))
    assert repr(event) == f"{cls.__name__}({shown})"
    twin = cls(*values)
    assert twin == event
    assert not twin != event  # noqa: SIM202 (__ne__, from __eq__)
    assert cls(**dict(zip(names, values, strict=True))) == event
    assert event != (*values,) and event != object()
    other = values[0] + 1 if isinstance(values[0], int) else {}
    changed = dataclasses.replace(event, **{names[0]: other})  # type: ignore[type-var]
    assert changed != event and getattr(changed, names[0]) == other
    assert dataclasses.asdict(event) == dict(zip(names, values, strict=True))  # type: ignore[call-overload]
    for name in names:
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(event, name, None)
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(event, name)
    assert getattr(event, names[0]) == values[0]  # unchanged
    assert copy.copy(event) == event and copy.deepcopy(event) == event
    assert pickle.loads(pickle.dumps(event)) == event
    if not any(isinstance(value, dict) for value in values):
        assert hash(twin) == hash(event) == hash(tuple(values))
        assert len({event, twin}) == 1
    else:  # a dict field makes it unhashable, as it did a frozen dataclass
        with pytest.raises(TypeError):
            hash(event)


def test_events_match_by_position_and_by_keyword() -> None:
    seen = []
    for event in EXAMPLES:
        match event:
            case StdinData(request_id, data):
                seen.append(("stdin", request_id, data))
            case RequestEnded(app_status=0, protocol_status=status):
                seen.append(("ended", status))
    assert seen == [("stdin", 1, b"body"), ("ended", ProtocolStatus.REQUEST_COMPLETE)]


def test_request_received_leaves_params_size_zero_unless_given() -> None:
    event = RequestReceived(4, Role.RESPONDER, False, {}, frozenset())
    assert event.params_size == 0
