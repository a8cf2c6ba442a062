"""The life of one request on the application side, as data.

h11 keeps its whole state machine in one table so the protocol can be read off it; this is
the same idea for FastCGI. A request becomes active with FCGI_BEGIN_REQUEST and then reads
its input streams strictly one after another (spec 6.1, "nearly sequential marshalling"):

============  ==============================  ==============================
role          streams, in order               source
============  ==============================  ==============================
RESPONDER     PARAMS, STDIN                   spec 6.2
AUTHORIZER    PARAMS                          spec 6.3
FILTER        PARAMS, STDIN, DATA             spec 6.4
============  ==============================  ==============================

The Authorizer reads no FCGI_STDIN: the spec's Authorizer section never mentions it, and
Apache (mod_fastcgi, mod_authnz_fcgi: "the responder owns the request body") never sends it.
Some other servers send an empty one anyway, so in an Authorizer FCGI_STDIN is dropped rather
than refused, and the connection reports an empty body (``StdinEnded``) as soon as the
params are in, so an application never waits for a stream that will not come.

Records that are not input streams are handled the same in every state and live in the
connection code: FCGI_BEGIN_REQUEST (only for an inactive id), FCGI_ABORT_REQUEST (ends the
request at once), and anything a web server never sends (always an error).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from fcgikit.protocol.constants import RecordType, Role


class RequestState(enum.Enum):
    """Where an active request is. An inactive id (never begun, or ended) has no state."""

    READING_PARAMS = "reading FCGI_PARAMS"
    READING_STDIN = "reading FCGI_STDIN"
    READING_DATA = "reading FCGI_DATA"
    INPUT_ENDED = "past the end of its input"
    #: FCGI_ABORT_REQUEST arrived after the app started: END_REQUEST is already queued, and
    #: the app's further output is dropped until it calls ``end_request``.
    ABORTED = "aborted"

    # Enum's __hash__ is Python code (hash of the member's name), run for every look-up of
    # INPUT_STREAMS[role, state]: ~0.15 us each, twice a request. Members are singletons
    # compared by identity, so the identity hash (C) agrees with ==.
    __hash__ = object.__hash__


@dataclass(frozen=True, slots=True)
class InputStream:
    """The one stream a state reads, and the state its empty (end-of-stream) record leads to."""

    record_type: RecordType
    state_after_end: RequestState


_PARAMS, _STDIN, _DATA = RecordType.PARAMS, RecordType.STDIN, RecordType.DATA
_R = RequestState

#: (role, state) -> the input stream the request reads in that state. A stream record of any
#: other type for an active request is a protocol error, unless IGNORED_STREAMS lists it.
INPUT_STREAMS: Final[Mapping[tuple[Role, RequestState], InputStream]] = {
    (Role.RESPONDER, _R.READING_PARAMS): InputStream(_PARAMS, _R.READING_STDIN),
    (Role.RESPONDER, _R.READING_STDIN): InputStream(_STDIN, _R.INPUT_ENDED),
    (Role.AUTHORIZER, _R.READING_PARAMS): InputStream(_PARAMS, _R.INPUT_ENDED),
    (Role.FILTER, _R.READING_PARAMS): InputStream(_PARAMS, _R.READING_STDIN),
    (Role.FILTER, _R.READING_STDIN): InputStream(_STDIN, _R.READING_DATA),
    (Role.FILTER, _R.READING_DATA): InputStream(_DATA, _R.INPUT_ENDED),
}

_ALL_STREAMS = frozenset({_PARAMS, _STDIN, _DATA})

#: (role, state) -> stream records dropped without complaint in that state.
IGNORED_STREAMS: Final[Mapping[tuple[Role, RequestState], frozenset[RecordType]]] = {
    (Role.AUTHORIZER, _R.INPUT_ENDED): frozenset({_STDIN}),
    # The web server may have had input in flight when it sent FCGI_ABORT_REQUEST.
    (Role.RESPONDER, _R.ABORTED): _ALL_STREAMS,
    (Role.AUTHORIZER, _R.ABORTED): _ALL_STREAMS,
    (Role.FILTER, _R.ABORTED): _ALL_STREAMS,
}
