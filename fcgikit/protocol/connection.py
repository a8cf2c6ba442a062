"""What both ends of a FastCGI connection share, sans I/O: bytes in -> events out.

:class:`~fcgikit.protocol.ServerConnection` (server_connection.py) is the application side,
what fcgikit's server runs on; :class:`~fcgikit.protocol.ClientConnection`
(client_connection.py) is the web-server side, what :mod:`fcgikit.client` and the tests run
on. Neither touches a socket, a thread or a WSGI environ, so the whole protocol can be tested
by wiring one to the other in memory, and fuzzed. Both are a :class:`RecordStream`:

* One ``receive_data`` call parses every complete record it is given and returns all their
  events; the caller never loops on ``next_event``. Input is the hot path.
* Peer input can only raise :class:`~fcgikit.errors.RemoteProtocolError`, and once it has,
  the connection stays failed: the caller should close it. Misuse of the API by our own code
  raises :class:`~fcgikit.errors.LocalProtocolError`.
"""

from __future__ import annotations

from typing import Any, Generic, TypeVar

from fcgikit.errors import LocalProtocolError, RemoteProtocolError
from fcgikit.protocol.record_reader import RecordReader

__all__ = ["RecordStream"]

#: what RecordStream._events is between two receive_data calls (nothing is added to it)
_NO_EVENTS: list[Any] = []

EventT = TypeVar("EventT")


def _failed(error: RemoteProtocolError) -> RemoteProtocolError:
    return RemoteProtocolError(f"the connection already failed ({error}); close it")


class RecordStream(Generic[EventT]):
    """Cutting input into records, the sticky error, and the events of one receive_data call.

    Subclasses implement ``_on_record`` and append their events to ``self._events``.
    """

    def __init__(self) -> None:
        self._reader = RecordReader()
        self._events: list[EventT] = _NO_EVENTS
        self._received_eof = False
        self._error: RemoteProtocolError | None = None

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[EventT]:
        """Parse every complete record in ``data`` (plus what was buffered before).

        On the application's end, automatic replies go to ``data_to_send``: call it after
        each ``receive_data``.

        Raises:
            RemoteProtocolError: the peer broke the protocol; close the connection.
                Every later call raises it again.
        """
        if self._error is not None:
            raise _failed(self._error)
        if self._received_eof and data:
            raise LocalProtocolError("receive_data() after receive_eof()")
        events: list[EventT] = []
        self._events = events
        try:
            self._reader.feed(data, self._on_record)
        except RemoteProtocolError as error:
            self._error = error
            raise
        finally:
            # Not kept: an idle connection would hold its last request's params (up to
            # max_params_size) until its next read.
            self._events = _NO_EVENTS
        return events

    def _on_record(self, record_type: int, request_id: int, content: memoryview) -> None:
        raise NotImplementedError
