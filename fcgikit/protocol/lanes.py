"""The protocol's C fast lanes (``_speedups.c``), the one table that lists them, and their numbers.

A lane only makes the ordinary case faster. It answers None (declines) outside that case;
the Python named as its twin is the specification, and does the work wherever the lane
declines or was not built; a property test holds the two together on generated input,
malformed input included. :data:`LANES` lists each lane with its twin and its test, and
tests/protocol/test_lanes.py walks the table, so that no lane can come without them.

The C takes every number it works with from Python, here, at import (:func:`configure`):
record types, the Responder role, the keep-conn flag, COPY_MAX. The sizes its code lays out
byte by byte (a record header, the bodies of FCGI_BEGIN_REQUEST and FCGI_END_REQUEST) it
checks against the ones given, and refuses to load if they differ. No number is kept twice.

Without the C module (not built, or ``FCGIKIT_PURE_PYTHON=1``) ``scan_request``,
``scan_request_text`` and ``frame_end`` are None, ``cut_run``, ``request_received`` and
``make_text_params`` are the Python twins, and the Python does the work.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields
from types import ModuleType
from typing import Final

from fcgikit.protocol.constants import (
    COPY_MAX,
    FCGI_HEADER_LEN,
    FCGI_KEEP_CONN,
    FCGI_MAX_CONTENT_LEN,
    FCGI_VERSION_1,
    RecordType,
    Role,
)
from fcgikit.protocol.events import ReceivedFields, RequestReceived, TextParams
from fcgikit.protocol.name_value_pairs import LONG_LENGTH_FLAG
from fcgikit.protocol.record_reader import CutRun, cut_run_py
from fcgikit.protocol.records import BEGIN_REQUEST_BODY, END_REQUEST_BODY

__all__ = [
    "LANES",
    "Lane",
    "configure",
    "cut_run",
    "frame_end",
    "request_received",
    "scan_request",
    "scan_request_text",
]


class Lane:
    """One fast lane: its C name, the Python it must agree with, the test that says it does.

    A plain class: a named tuple's class costs a compiled ``__new__`` at every start."""

    def __init__(self, c_name: str, python_twin: str, equivalence_test: str) -> None:
        #: the name in fcgikit.protocol._speedups
        self.c_name: Final = c_name
        #: the Python twin, as ``module:qualified.name``
        self.python_twin: Final = python_twin
        #: the property test that holds the lane to its twin, as ``path::function``
        self.equivalence_test: Final = equivalence_test


_TESTS = "tests/protocol/test_speedups.py"

LANES: Final[tuple[Lane, ...]] = (
    Lane(
        "scan_request",
        "fcgikit.protocol.whole_request:scan_request_py",
        f"{_TESTS}::test_scan_request_answers_what_its_python_twin_answers",
    ),
    Lane(
        "scan_request_text",
        "fcgikit.protocol.text_scan:scan_request_text_py",
        f"{_TESTS}::test_scan_request_text_answers_what_its_python_twin_answers",
    ),
    Lane(
        "frame_end",
        "fcgikit.protocol.output:frame_end_py",
        f"{_TESTS}::test_frame_end_frames_what_its_python_twin_frames",
    ),
    Lane(
        "cut_run",
        "fcgikit.protocol.record_reader:cut_run_py",
        f"{_TESTS}::test_cut_run_cuts_what_its_python_twin_cuts",
    ),
    Lane(  # (its other use, make_text_params, has text_params_py, in the same test)
        "SlotsFactory",
        "fcgikit.protocol.lanes:request_received_py",
        f"{_TESTS}::test_the_factory_makes_the_event_its_python_twin_makes",
    ),
)

#: What the C module is given at import (and checks, for the sizes it lays out itself).
C_CONSTANTS: Final[Mapping[str, int]] = {
    "FCGI_VERSION_1": FCGI_VERSION_1,
    "FCGI_HEADER_LEN": FCGI_HEADER_LEN,
    "FCGI_MAX_CONTENT_LEN": FCGI_MAX_CONTENT_LEN,
    "FCGI_KEEP_CONN": FCGI_KEEP_CONN,
    "BEGIN_REQUEST": RecordType.BEGIN_REQUEST,
    "END_REQUEST": RecordType.END_REQUEST,
    "PARAMS": RecordType.PARAMS,
    "STDIN": RecordType.STDIN,
    "STDOUT": RecordType.STDOUT,
    "STDERR": RecordType.STDERR,
    "RESPONDER": Role.RESPONDER,
    "BEGIN_REQUEST_BODY_LEN": BEGIN_REQUEST_BODY.size,
    "END_REQUEST_BODY_LEN": END_REQUEST_BODY.size,
    # the four-byte form's flag, in the first byte of a name or value length (spec 3.4)
    "LONG_LENGTH_FLAG": LONG_LENGTH_FLAG >> 24,
    "COPY_MAX": COPY_MAX,
}

#: what scan_request finds: request_id, keep_conn, params, duplicate_names (None for none),
#: stdin_chunks (the body so far, in pieces: the C lane gives a piece a record, its twin one
#: for all; where it is cut means nothing), stdin_ended, params_size
ScannedRequest = tuple[int, bool, dict[bytes, bytes], set[bytes] | None, list[bytes], bool, int]
ScanRequest = Callable[[bytes | bytearray | memoryview, int, int], ScannedRequest | None]
#: the caller's verdict on each param name scan_request_text decodes as text: the str to
#: store its value under (the name decoded latin-1), or None to leave the pair out; a name
#: not in it makes the scan decline
NameTable = dict[bytes, str | None]
#: what scan_request_text finds: as ScannedRequest, the params as the pairs' bytes and their text
ScannedText = tuple[
    int, bool, tuple[bytes, dict[str, str]], set[bytes] | None, list[bytes], bool, int
]
ScanRequestText = Callable[
    [bytes | bytearray | memoryview, int, int, NameTable, int], ScannedText | None
]
FrameEnd = Callable[[int, Sequence[bytes | memoryview], int, int, bool, bool], bytes | None]
MakeRequestReceived = Callable[
    [int, Role, bool, Mapping[bytes, bytes], frozenset[bytes], int], RequestReceived
]
MakeTextParams = Callable[[bytes, None, dict[str, str]], TextParams]

#: RequestReceived's fields, in the order of its __init__'s arguments
FIELD_NAMES: Final = tuple(field.name for field in fields(RequestReceived))


#: (read once: interpreted, ``object.__new__`` is two look-ups in types each call)
_new_object: Final = object.__new__


def request_received_py(
    request_id: int,
    role: Role,
    keep_conn: bool,
    params: Mapping[bytes, bytes],
    duplicate_names: frozenset[bytes],
    params_size: int,
) -> RequestReceived:
    """``RequestReceived(request_id, role, keep_conn, params, duplicate_names, params_size)``
    without the dataclass's __init__ (which only stores its arguments): the Python twin of
    the C ``SlotsFactory(RequestReceived, FIELD_NAMES)``. The fields go into a
    ReceivedFields, which then becomes the event (see there)."""
    event = _new_object(ReceivedFields)
    event.request_id = request_id
    event.role = role
    event.keep_conn = keep_conn
    event.params = params
    event.duplicate_names = duplicate_names
    event.params_size = params_size
    event.__class__ = RequestReceived  # type: ignore[assignment]
    return event  # type: ignore[return-value]


#: TextParams' slots (its own and EncodedParams'), in make_text_params' order
TEXT_PARAMS_SLOTS: Final = ("encoded", "_decoded", "text")


def text_params_py(encoded: bytes, decoded: None, text: dict[str, str]) -> TextParams:
    """``TextParams(encoded, text)``, whose ``_decoded`` its __init__ leaves None: the Python
    twin of the C ``SlotsFactory(TextParams, TEXT_PARAMS_SLOTS)``, which makes it without
    the interpreted __init__ (a scan's whole request makes one): so does this (interpreted,
    a class's call of its __init__ costs more than its three fields)."""
    params = _new_object(TextParams)
    params.encoded = encoded
    params._decoded = decoded
    params.text = text
    return params


def configure(module: ModuleType) -> None:
    """Give a ``_speedups`` module (this build's, or one a test loaded from its file) the
    numbers it works with; it raises ValueError if one it lays out differs."""
    module.configure(C_CONSTANTS)


#: _speedups.scan_request (an ordinary request arriving whole, in one pass), or None
scan_request: ScanRequest | None = None
#: _speedups.scan_request_text (the same, its params decoded as text), or None
scan_request_text: ScanRequestText | None = None
#: _speedups.frame_end (a small response's end, in one buffer), or None
frame_end: FrameEnd | None = None
#: cuts a run of a body's records in a read (RecordReader.follow): the C lane, or its twin
cut_run: CutRun = cut_run_py
#: makes the RequestReceived of each request: the C factory, or its Python twin
request_received: MakeRequestReceived = request_received_py
#: makes the TextParams of a scan's whole request: the C factory, or its Python twin
make_text_params: MakeTextParams = text_params_py
try:
    from fcgikit.protocol import _speedups
except ImportError:
    pass
else:
    _speedups.configure(C_CONSTANTS)
    scan_request = _speedups.scan_request
    scan_request_text = _speedups.scan_request_text
    frame_end = _speedups.frame_end
    cut_run = _speedups.cut_run
    request_received = _speedups.SlotsFactory(RequestReceived, FIELD_NAMES)
    make_text_params = _speedups.SlotsFactory(TextParams, TEXT_PARAMS_SLOTS)
