"""Numbers from the FastCGI 1.0 specification (section 8, "Types and Constants"), and the one
framing threshold fcgikit chooses itself (COPY_MAX).

The C fast lanes take the numbers they need from here at import (see lanes.py)."""

from __future__ import annotations

import enum

FCGI_VERSION_1 = 1
FCGI_HEADER_LEN = 8
#: The largest content a single record can carry (contentLength is 16 bits).
FCGI_MAX_CONTENT_LEN = 65535
#: Request id 0 is reserved for management records.
FCGI_NULL_REQUEST_ID = 0

#: flags in BEGIN_REQUEST
FCGI_KEEP_CONN = 1


class RecordType(enum.IntEnum):
    BEGIN_REQUEST = 1
    ABORT_REQUEST = 2
    END_REQUEST = 3
    PARAMS = 4
    STDIN = 5
    STDOUT = 6
    STDERR = 7
    DATA = 8
    GET_VALUES = 9
    GET_VALUES_RESULT = 10
    UNKNOWN_TYPE = 11


#: The record types the spec calls management records (always request id 0).
MANAGEMENT_RECORD_TYPES = frozenset(
    {RecordType.GET_VALUES, RecordType.GET_VALUES_RESULT, RecordType.UNKNOWN_TYPE}
)


class Role(enum.IntEnum):
    RESPONDER = 1
    AUTHORIZER = 2
    FILTER = 3


class ProtocolStatus(enum.IntEnum):
    REQUEST_COMPLETE = 0
    CANT_MPX_CONN = 1
    OVERLOADED = 2
    UNKNOWN_ROLE = 3


#: fcgikit's choice, not the spec's: a request's output shorter than this many bytes is framed
#: into one buffer with its records; longer output is framed where it lies, as buffers for
#: ``socket.sendmsg``, and not copied. For a few kilobytes one copy costs less than an iovec
#: each (benchmarks/RESULTS.md, "Notes from the code"). At most FCGI_MAX_CONTENT_LEN: what is
#: joined fits one record.
COPY_MAX = 8192

# Variable names a web server may ask for with GET_VALUES (bytes: params stay bytes).
FCGI_MAX_CONNS = b"FCGI_MAX_CONNS"
FCGI_MAX_REQS = b"FCGI_MAX_REQS"
FCGI_MPXS_CONNS = b"FCGI_MPXS_CONNS"

# Aliases with flup's names, so `from fcgikit import FCGI_RESPONDER` works for migrating code.
FCGI_RESPONDER = Role.RESPONDER
FCGI_AUTHORIZER = Role.AUTHORIZER
FCGI_FILTER = Role.FILTER
