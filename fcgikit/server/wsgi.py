"""The WSGI side of one FastCGI request (PEP 3333): the environ in, the response out.

A :class:`WSGIRequest` runs on a worker thread. It builds the environ from the params in one
pass (names and values decoded latin-1, the PEP 3333 rule), calls the app, validates the
status and headers, and writes CGI-style output (``Status:`` line, headers, body) through its
:class:`~fcgikit.server.sink.ResponseSink`. A response whose body is a list goes out with its
headers and END_REQUEST in a single send; an iterator streams chunk by chunk, each send
blocking while the web server is slow (backpressure, never a whole body in memory).

Beside it: :mod:`~fcgikit.server.wsgi_codec` turns the params into the environ's text and the
status and headers into the head's bytes; :mod:`~fcgikit.server.wsgi_streams` holds
``wsgi.errors`` and ``wsgi.file_wrapper``; :mod:`~fcgikit.server.request_input` makes, fails and
closes its body (``wsgi.input``); :mod:`~fcgikit.server.observe` records the request once it is
over (the access log, the status page's counters); :mod:`~fcgikit.server.wsgi_failures` says
what a failed app's request logs and answers; :mod:`~fcgikit.server.request_settings` holds
what a request reads of its server's settings.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final

from fcgikit.protocol.constants import Role
from fcgikit.protocol.events import EncodedParams, RequestReceived, TextParams
from fcgikit.server.held_replies import ServerReply
from fcgikit.server.observe import observe_request
from fcgikit.server.request_input import filter_data, request_body
from fcgikit.server.request_settings import request_settings
from fcgikit.server.sink import ResponseSink, ServerSink, WebServerGone
from fcgikit.server.wsgi_codec import (
    CGI_NAMES,
    DROPPED_PARAMS,
    declares_length,
    encode_head_py,
    environ_from_params_py,
    fill_cgi_defaults,
    url_scheme,
)
from fcgikit.server.wsgi_codec import fast_encode_head as fast_encode_head
from fcgikit.server.wsgi_codec import fast_environ as fast_environ
from fcgikit.server.wsgi_failures import PROCESS_EXITS as PROCESS_EXITS
from fcgikit.server.wsgi_failures import answer_failure, app_raised
from fcgikit.server.wsgi_streams import ErrorStream
from fcgikit.server.wsgi_streams import FileWrapper as FileWrapper

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from fcgikit.server.held_replies import Reply
    from fcgikit.server.settings import ServerSettings
    from fcgikit.server.tracker import RequestTracker

log = logging.getLogger("fcgikit.server")

# Exported as well as used: fast_environ and fast_encode_head, the C lane's two steps (None
# where it was not built), are read per request as globals of this module, where a test or
# the fuzzer plugs a lane in or takes it out; and FileWrapper was always importable from here.

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]

#: Role.name is a Python-level property of enum: looked up once here, not per request
_ROLE_NAMES: Final = {role: role.name for role in Role}
#: (an Enum member read from its class costs about a function call, interpreted)
_FILTER: Final = Role.FILTER


class WSGIRequest(ServerReply):
    """One request; also its own job (``run``), its app's ``start_response`` (``__call__``)
    and, once its sink's ``finish`` framed it, its own
    :class:`~fcgikit.server.held_replies.Reply`: no objects to make for them per request
    (compiled, a bound method read as an attribute is a new object each time)."""

    def __init__(
        self,
        channel: ResponseSink,
        event: RequestReceived,
        app: WSGIApplication,
        settings: ServerSettings,
        streamed: bool = True,
    ) -> None:
        self.channel = channel
        self.request_id = event.request_id
        self.event = event
        #: the event's params (read once: compiled, each read of the interpreted event's
        #: attribute is a look-up by name)
        self.params = params = event.params
        #: the params' text when they are TextParams (see there), the request's from now on:
        #: taken once here, for the body, the queued-memory bound and the environ (compiled,
        #: each read of the interpreted params' attribute is a look-up by name)
        self.text: dict[str, str] | None = None
        if type(params) is TextParams:
            self.text, params.text = params.text, None
        self.app = app
        self.settings = settings
        self._settings = fixed = request_settings(settings)
        #: records the request of a pool worker's app (None: not a worker's, or a ping)
        self.tracker: RequestTracker | None = fixed.tracker
        self.body = request_body(params, fixed, streamed, self.text)
        #: the request's FastCGI role (the event's, read once)
        self.role = role = event.role
        self.filter_data = filter_data(event, fixed) if role == _FILTER else None
        self.aborted = False
        #: it may have waited long to run (in the listen backlog, or for a free thread), long
        #: enough for its web server to give up on it: run() looks first (web_server_gone)
        self.waited = False
        #: close the connection once this request is over (its input stream is out of step)
        self.close_connection = False
        #: END_REQUEST is framed to go out (or the id was released without one)
        self.ended = False
        self._status: str | None = None
        self._headers: list[tuple[str, str]] = []
        #: the response's head went out (too late for another status)
        self.headers_sent = False
        self.bytes_sent = 0
        #: the CGI head's share of bytes_sent, which the access log does not count as body
        self.head_length = 0
        self.started = time.monotonic() if fixed.observe_requests else 0.0
        #: its reply, framed by its sink's finish and not sent yet (see send); [] once the
        #: request was aborted (its END_REQUEST went with the abort)
        self.reply_buffers: list[bytes | memoryview] = []
        #: the connection closes right behind the reply (the sink's verdict)
        self.reply_then_close = False

    @property
    def label(self) -> str:
        params = self.event.params
        method = params.get(b"REQUEST_METHOD", b"-").decode("latin-1")
        uri = params.get(b"REQUEST_URI") or params.get(b"SCRIPT_NAME", b"") + params.get(
            b"PATH_INFO", b""
        )
        return f"#{self.request_id} {method} {uri.decode('latin-1')}"

    # --- environ ---------------------------------------------------------------------------

    def build_environ(self) -> dict[str, Any]:
        settings = self._settings
        params = self.params
        # Decoded as its records were read (WholeRequest.parse, by environ_names' verdicts):
        # the params' text becomes the environ, taken from the request it will refer to
        # (wsgi.errors), which leaves no cycle for the collector.
        environ: dict[str, Any] | None = self.text
        self.text = None
        if environ is None:
            if not isinstance(params, dict):  # a request with many params: decoded now, once
                params = params.decode() if isinstance(params, EncodedParams) else dict(params)
            if fast_environ is not None:
                environ = fast_environ(settings.base_environ, params, DROPPED_PARAMS)
            if environ is None:  # no fast lane, or a reserved name, which the Python drops
                environ = environ_from_params_py(settings.base_environ, params, DROPPED_PARAMS)
        # Empty (nginx sends both for a GET): left out. (Compiled, del and a look-up cost
        # less than pop() and strip(), which are calls of methods.)
        length = environ.get("CONTENT_LENGTH")
        if length is not None and (length == "" or not length.strip()):
            del environ["CONTENT_LENGTH"]
        content_type = environ.get("CONTENT_TYPE")
        if content_type is not None and not content_type:
            del environ["CONTENT_TYPE"]
        for name in CGI_NAMES:  # (compiled, seven look-ups cost less than keys() >= them)
            if name not in environ:
                fill_cgi_defaults(environ)
                break
        environ["wsgi.version"] = (1, 0)
        environ["wsgi.url_scheme"] = url_scheme(environ)
        environ["wsgi.input"] = self.body
        environ["wsgi.input_terminated"] = True
        environ["wsgi.errors"] = ErrorStream(self)
        environ["wsgi.multithread"] = settings.multithread
        environ["wsgi.multiprocess"] = settings.multiprocess
        environ["wsgi.run_once"] = False
        environ["wsgi.file_wrapper"] = FileWrapper
        environ["FCGI_ROLE"] = _ROLE_NAMES[self.role]
        environ["fcgikit.request_id"] = self.request_id
        if self.filter_data is not None:
            environ["fcgikit.filter_data"] = self.filter_data
        if self.event.duplicate_names:
            environ["fcgikit.duplicate_params"] = frozenset(
                name.decode("latin-1") for name in self.event.duplicate_names
            )
        return environ

    # --- the WSGI callables ----------------------------------------------------------------

    def __call__(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        """start_response: the request is what its app gets for it."""
        if exc_info is not None and exc_info[1] is not None:
            try:
                if self.headers_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # no reference cycle through the traceback
        elif self._status is not None:
            raise AssertionError("start_response called a second time without exc_info")
        self._status = status
        self._headers = list(headers)
        return self.write

    def write(self, data: bytes) -> None:
        # (start_response returns this, once it has set the status)
        if not isinstance(data, (bytes, bytearray)):
            raise TypeError(f"response body must be bytes, not {type(data).__name__}")
        if not self.headers_sent:
            self._send_stdout(self._encode_head(None) + data)
        elif data:
            self._send_stdout(bytes(data))

    # --- output ----------------------------------------------------------------------------

    def _encode_head(self, content_length: int | None) -> bytes:
        status = self._status
        if status is None:
            raise AssertionError("the application returned without calling start_response()")
        head = None
        lane = fast_encode_head  # (a global, looked up by name: once)
        if lane is not None:
            head = lane(status, self._headers, content_length)
        if head is None:  # no fast lane, or something it leaves to the spec (an error, mostly)
            head = encode_head_py(status, self._headers, content_length)
        self.head_length = len(head)
        self.headers_sent = True
        return head

    @property
    def status_code(self) -> int:
        """The response's status code once its head is made, else 0 (for the access log and
        the status page: read only when they look, so not made for every request)."""
        status = self._status
        return int(status[:3]) if self.headers_sent and status is not None else 0

    def _send_stdout(self, data: bytes) -> None:
        if self.aborted:
            raise WebServerGone("aborted")
        self.bytes_sent += len(data)
        self.channel.send_output(self, data)

    def send_stderr(self, data: bytes) -> None:
        if not self.aborted:
            try:
                self.channel.send_stderr(self, data)
            except WebServerGone:
                self.aborted = True

    # --- the whole request -----------------------------------------------------------------

    def run(self) -> Reply | None:
        """Run the request: the job the pool runs. Its reply is returned, for the pool to
        send and then end the request with (``Reply.done``); a request without one (it was
        not run, or cut short) is over when this returns."""
        reply: Reply | None = None
        try:
            if self.aborted or (self.waited and self.channel.web_server_gone()):
                # Nobody waits for its answer: running it would be work for nothing, or worse
                # (the request that kills its worker, run again by each new one).
                self.aborted = True
                log.info(
                    "request %s not run: the web server closed the connection or aborted the "
                    "request before it began",
                    self.label,
                )
            else:
                tracker = self.tracker
                if tracker is None:
                    reply = self._respond(self.build_environ(), self.app)
                else:
                    reply = self._run_tracked(tracker)
        except WebServerGone as exc:
            self.aborted = True
            log.info("request %s: the web server went away (%s); output dropped", self.label, exc)
        except BaseException:
            # A fault of the server's own (_respond answers all of the app's): the web server
            # must not wait for an END_REQUEST that will never come, so the connection closes.
            log.exception("request %s: unexpected error; closing its connection", self.label)
            self.close_connection = True
        finally:
            # The request is over: its input streams' memory and spool files are freed.
            self.body.close()
            if self.filter_data is not None:
                self.filter_data.close()
            if reply is None:
                self.done(on_loop=False)
        return reply

    def send(self) -> None:
        """Send its reply (what its sink's finish framed) whole. A web server that went
        away meanwhile is logged; the request ends all the same (done)."""
        buffers = self.reply_buffers
        if not buffers:
            return  # aborted: its END_REQUEST went with the abort
        channel = self.channel
        try:
            if isinstance(channel, ServerSink):  # (only a ServerSink's finish returns it)
                channel.send_buffers(buffers, self.reply_then_close)
        except WebServerGone as exc:
            log.info("request %s: the web server went away (%s); output dropped", self.label, exc)

    def done(self, *, on_loop: bool) -> None:
        """The request is over, its reply sent if it had one: the status page's counters and
        the access log see it (ServerSettings.observe_requests), then its connection learns
        it (and may close: ``on_loop``, see ResponseSink.request_done)."""
        try:
            if self._settings.observe_requests:
                observe_request(self, time.monotonic() - self.started)
        finally:
            # Last: a graceful stop ends once no connection is left, so it waits for the
            # access line too (a pool's worker exits right after).
            channel = self.channel
            if isinstance(channel, ServerSink):
                channel.request_done(self, on_loop=on_loop)  # (compiled: a direct call)
            else:
                channel.request_done(self, on_loop=on_loop)

    def _run_tracked(self, tracker: RequestTracker) -> Reply | None:
        """run's call of the app for a pool worker's request: it holds its tracker's cell
        until its response is over here (closed, its error answered, or its web server
        gone), before the reply goes out."""
        environ = self.build_environ()
        page = tracker.status_page
        if page is not None and page.wants(environ):
            return self._respond(environ, page)  # the worker's own page: no app request
        cell = tracker.begin(environ)
        try:
            return self._respond(environ, self.app)
        finally:
            tracker.end(cell)

    def _respond(self, environ: dict[str, Any], app: WSGIApplication) -> Reply | None:
        """Call the app and produce its response; what is left to send (ResponseSink.finish)."""
        try:
            result = app(environ, self)  # (its start_response: __call__)
        except WebServerGone:
            raise
        except BaseException:  # sys.exit() and KeyboardInterrupt too (PROCESS_EXITS)
            return answer_failure(self, sys.exc_info())
        try:
            head, body = self._produce(result)
        except WebServerGone:
            self._close_result(result)
            raise
        except BaseException:  # a broken iterable's GeneratorExit too
            self._close_result(result)
            return answer_failure(self, sys.exc_info())
        # close() runs before END_REQUEST, so the app's teardown (Flask's teardown_request,
        # a database commit) is over by the time the web server sees the response complete.
        self._close_result(result)
        channel = self.channel
        if isinstance(channel, ServerSink):
            return channel.finish(self, head, body, 0)  # (compiled: a direct call)
        return channel.finish(self, head, body, 0)

    def _produce(self, result: Iterable[bytes]) -> tuple[bytes, bytes]:
        """Send the body; return what is left to go out with END_REQUEST: (head, body)."""
        # (isinstance with tuples, not ``X | Y``: interpreted, the union is made at each call)
        if not self.headers_sent and isinstance(result, (list, tuple)):
            body = b"".join(result)
            return self._encode_head(len(body)), body
        # A first chunk as long as the declared Content-Length is the whole body (Flask's
        # usual response): it goes out with END_REQUEST, in one send, not two.
        whole: bytes | None = None
        for chunk in result:
            if not chunk:
                continue
            if whole is not None:  # more than it declared: stream after all
                self.write(whole)
                whole = None
            if not self.headers_sent and declares_length(self._headers, len(chunk)):
                whole = chunk
            else:
                self.write(chunk)
        if whole is not None:
            if not isinstance(whole, (bytes, bytearray)):
                raise TypeError(f"response body must be bytes, not {type(whole).__name__}")
            return self._encode_head(None), whole
        return (b"" if self.headers_sent else self._encode_head(0)), b""

    def _close_result(self, result: Iterable[bytes]) -> None:
        if type(result) is list:
            # (no close(); compiled, getattr() with a default formats an AttributeError first)
            return
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except BaseException as exc:
                log.exception("request %s: the app's close() raised", self.label)
                app_raised(self, exc)

    def answer_page(self, status: str, content_type: str, page: bytes) -> Reply | None:
        """The whole response ``page``, with ``status``, in place of the app's (whose
        failure wsgi_failures.answer_failure answers)."""
        self._status = status
        self._headers = [("Content-Type", content_type)]
        return self.channel.finish(self, self._encode_head(len(page)), page, 1)
