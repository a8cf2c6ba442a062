"""One request's output, framed: FCGI_STDOUT, FCGI_STDERR, the ends of both, FCGI_END_REQUEST.

A :class:`RequestOutput` is what both ways a request can come answer through: each active
request of a :class:`~fcgikit.protocol.ServerConnection` is one, and so is a
:class:`~fcgikit.protocol.whole_request.WholeRequest`. A response therefore goes out as the
same bytes whichever way its request came. What it decides:

* Every request's FCGI_STDOUT is ended by an empty record, even an empty stream (spec 6.1);
  only a refusal that never wrote anything sends FCGI_END_REQUEST alone. FCGI_STDERR is
  optional: it is ended only if it was started.
* Output is framed by :func:`~fcgikit.protocol.records.frame_records` where it lies, as
  buffers for ``socket.sendmsg``, unless it is shorter than
  :data:`~fcgikit.protocol.constants.COPY_MAX` bytes: then it is joined with its records
  into one buffer, for one plain ``send``.
* The end of a request is framed by the C lane ``frame_end`` when it is built and the final
  stdout is small bytes (one buffer, in one step); :func:`frame_end_py` is the same in
  Python, and what frames everything else.
* Statuses are checked before anything is framed, and a request ends once: output after its
  end is our own code's mistake, a LocalProtocolError.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from fcgikit.errors import LocalProtocolError
from fcgikit.protocol.constants import COPY_MAX, FCGI_VERSION_1, ProtocolStatus, RecordType
from fcgikit.protocol.lanes import frame_end
from fcgikit.protocol.records import (
    END_REQUEST_BODY,
    HEADER,
    PADDING,
    frame_records,
    pack_header,
    pack_records,
)

__all__ = ["RequestOutput", "checked_status", "end_request_record", "frame_end_py"]

# Plain ints: cheaper than IntEnum members on the hot path.
_END_REQUEST: Final = int(RecordType.END_REQUEST)
_STDOUT: Final = int(RecordType.STDOUT)
_STDERR: Final = int(RecordType.STDERR)
_END_REQUEST_LEN: Final = END_REQUEST_BODY.size
_MAX_APP_STATUS: Final = 0xFFFFFFFF
_COMPLETE: Final = ProtocolStatus.REQUEST_COMPLETE
#: number -> member without Enum.__call__, which is Python code
_STATUSES_BY_NUMBER: Final[dict[int, ProtocolStatus]] = {
    int(status): status for status in ProtocolStatus
}


def end_request_record(request_id: int, app_status: int, protocol_status: int) -> bytes:
    """One FCGI_END_REQUEST record (a refusal, or the end of an answer)."""
    return pack_header(_END_REQUEST, request_id, _END_REQUEST_LEN) + END_REQUEST_BODY.pack(
        app_status, protocol_status
    )


def closing_records(request_id: int, close_stdout: bool, close_stderr: bool) -> bytes:
    """The empty records that end a request's output streams, before its END_REQUEST."""
    closing = pack_header(_STDOUT, request_id, 0) if close_stdout else b""
    if close_stderr:
        closing += pack_header(_STDERR, request_id, 0)
    return closing


def checked_status(app_status: int, protocol_status: ProtocolStatus | int) -> ProtocolStatus:
    """``protocol_status`` as a member, once both statuses are known to fit END_REQUEST.

    Raises:
        LocalProtocolError: ``app_status`` does not fit in 32 bits, or ``protocol_status``
            is no ProtocolStatus.
    """
    if not 0 <= app_status <= _MAX_APP_STATUS:
        raise LocalProtocolError(
            f"app_status must fit in 32 bits (0 to {_MAX_APP_STATUS}), not {app_status}"
        )
    try:
        found = _STATUSES_BY_NUMBER.get(protocol_status)  # IntEnum: a member is its number
    except TypeError:  # unhashable
        found = None
    if found is None:
        raise LocalProtocolError(f"{protocol_status!r} is not a ProtocolStatus")
    return found


def _length(pieces: Sequence[bytes | memoryview]) -> int:
    total = 0
    for piece in pieces:
        total += len(piece)
    return total


def frame_stdout(request_id: int, pieces: Sequence[bytes | memoryview]) -> list[bytes | memoryview]:
    """``pieces`` on FCGI_STDOUT: one buffer under COPY_MAX bytes, else framed where they lie;
    ``[]`` for no data."""
    buffers = frame_records(_STDOUT, request_id, pieces)
    # Under COPY_MAX bytes is one record: its header, the pieces and maybe its padding. More
    # buffers than that is a large body, which is not measured again.
    if 1 < len(buffers) <= len(pieces) + 2 and _length(pieces) < COPY_MAX:
        return [b"".join(buffers)]
    return buffers


def frame_end_py(
    request_id: int,
    pieces: Sequence[bytes | memoryview],
    app_status: int,
    protocol_status: int,
    close_stdout: bool,
    close_stderr: bool,
) -> list[bytes | memoryview]:
    """The end of a request: ``pieces`` (its last stdout) on FCGI_STDOUT, the empty FCGI_STDOUT
    (if there was stdout, or ``close_stdout``), the empty FCGI_STDERR (if ``close_stderr``)
    and FCGI_END_REQUEST; one buffer when the pieces are under COPY_MAX bytes.

    The Python twin of the C lane ``frame_end`` (lanes.py), which answers the same single
    buffer for pieces that are all bytes, or None.
    """
    total = 0  # (not _length: a call costs more than this loop, interpreted)
    for piece in pieces:
        total += len(piece)
    if total and total < COPY_MAX:  # one record, and all of it one buffer
        if app_status or protocol_status is not _COMPLETE or close_stderr:
            end = closing_records(request_id, True, close_stderr) + end_request_record(
                request_id, app_status, protocol_status
            )
        else:
            end = _COMPLETED_ENDS.get(request_id) or _completed_end(request_id)
        padding = -total & 7
        head = HEADER.pack(FCGI_VERSION_1, _STDOUT, request_id, total, padding)
        return [b"".join([head, *pieces, PADDING[padding], end])]
    buffers = frame_records(_STDOUT, request_id, pieces)
    closing = closing_records(request_id, close_stdout or bool(buffers), close_stderr)
    buffers.append(closing + end_request_record(request_id, app_status, protocol_status))
    if len(buffers) > 1 and total < COPY_MAX:
        return [b"".join(buffers)]
    return buffers


# The empty FCGI_STDOUT and the FCGI_END_REQUEST (REQUEST_COMPLETE, app status 0) that end
# a request's answer, by request id: the same bytes every time (nginx always uses id 1).
# Capped: the peer picks the ids.
COMPLETED_ENDS_CACHED = 64
_COMPLETED_ENDS: dict[int, bytes] = {}


def _completed_end(request_id: int) -> bytes:
    end = _COMPLETED_ENDS.get(request_id)
    if end is None:
        end = closing_records(request_id, True, False) + end_request_record(
            request_id, 0, _COMPLETE
        )
        if len(_COMPLETED_ENDS) < COMPLETED_ENDS_CACHED:
            _COMPLETED_ENDS[request_id] = end
    return end


class RequestOutput:
    """Frames the output of the request ``request_id``: each method returns the bytes to send.

    Not thread-safe: its owner serialises the calls, and the sends of what they return.
    """

    __slots__ = ("_ended", "request_id", "stderr_sent", "stdout_sent")

    def __init__(self, request_id: int) -> None:
        self.request_id = request_id
        #: whether an FCGI_STDOUT / FCGI_STDERR record with data went out (its stream is open)
        self.stdout_sent = False
        self.stderr_sent = False
        self._ended = False

    def _ended_error(self, what: str) -> LocalProtocolError:
        return LocalProtocolError(f"cannot send {what} for request {self.request_id}: it has ended")

    def send_stdout_buffers(self, pieces: Sequence[bytes | memoryview]) -> list[bytes | memoryview]:
        """The concatenation of ``pieces`` on FCGI_STDOUT, as buffers for ``socket.sendmsg``
        (one buffer under COPY_MAX bytes); ``[]`` for no data."""
        if self._ended:
            raise self._ended_error("FCGI_STDOUT")
        buffers = frame_stdout(self.request_id, pieces)
        if buffers:
            self.stdout_sent = True
        return buffers

    def open_stdout(self) -> int:
        """For FCGI_STDOUT framed by its sender (a streamed response's large block, see
        fcgikit/server/reply.py's send_stdout): the stream marked open, and the request's id
        to frame the records with. The caller frames non-empty data as frame_stdout does."""
        if self._ended:
            raise self._ended_error("FCGI_STDOUT")
        self.stdout_sent = True
        return self.request_id

    def send_stderr(self, data: bytes) -> bytes:
        """``data`` on FCGI_STDERR; ``b""`` for no data (which opens no stream)."""
        if self._ended:
            raise self._ended_error("FCGI_STDERR")
        if not data:
            return b""
        self.stderr_sent = True
        return pack_records(_STDERR, self.request_id, data)

    def end_request_buffers(
        self,
        app_status: int = 0,
        protocol_status: ProtocolStatus | int = _COMPLETE,
        stdout: Sequence[bytes | memoryview] = (),
    ) -> list[bytes | memoryview]:
        """The request's last ``stdout`` (given in pieces, say a response's head and body),
        the ends of its output streams and FCGI_END_REQUEST, as buffers for
        ``socket.sendmsg`` (one buffer when ``stdout`` is under COPY_MAX bytes).

        Refusing a request the app has not answered (``protocol_status`` other than
        REQUEST_COMPLETE, nothing on stdout) sends FCGI_END_REQUEST alone.

        Raises:
            LocalProtocolError: the request has ended already, ``app_status`` does not fit
                in 32 bits, or ``protocol_status`` is no ProtocolStatus.
        """
        if self._ended:
            raise self._ended_error("FCGI_END_REQUEST")
        # The usual end needs no check (a call, interpreted)
        if protocol_status is _COMPLETE and app_status == 0:
            status = _COMPLETE
        else:
            status = checked_status(app_status, protocol_status)
        self._ended = True
        close_stdout = self.stdout_sent or status is _COMPLETE
        lane = frame_end
        if lane is not None:
            framed = lane(
                self.request_id, stdout, app_status, status, close_stdout, self.stderr_sent
            )
            if framed is not None:
                return [framed]
        return frame_end_py(
            self.request_id, stdout, app_status, status, close_stdout, self.stderr_sent
        )

    def abort(self) -> bytes:
        """What answers FCGI_ABORT_REQUEST: the ends of the streams the app opened, and
        FCGI_END_REQUEST (REQUEST_COMPLETE). The request has ended."""
        self._ended = True
        closing = closing_records(self.request_id, self.stdout_sent, self.stderr_sent)
        return closing + end_request_record(self.request_id, 0, _COMPLETE)
