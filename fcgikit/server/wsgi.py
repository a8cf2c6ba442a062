"""The WSGI side of one FastCGI request (PEP 3333): the environ in, the response out.

A :class:`WSGIRequest` runs on a worker thread. It builds the environ from the params in one
pass (names and values decoded latin-1, the PEP 3333 rule), calls the app, validates the
status and headers, and writes CGI-style output (``Status:`` line, headers, body) through its
:class:`Channel`. A response whose body is a list goes out with its headers and END_REQUEST in a
single send; an iterator streams chunk by chunk, each send blocking while the web server is
slow (backpressure, never a whole body in memory).
"""

from __future__ import annotations

import html
import logging
import os
import re
import string
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Final, Protocol

from fcgikit.protocol.constants import Role
from fcgikit.protocol.events import EncodedParams, RequestReceived
from fcgikit.server.body import RequestBody, RequestBodyError, RequestBodyTimeout
from fcgikit.server.logs import (
    ACCESS_FORMAT,
    access_log,
    combined_line,
    iso_time,
    json_line,
    request_uri,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from fcgikit.server.pool import Reply
    from fcgikit.server.settings import ServerSettings

log = logging.getLogger("fcgikit.server")

ExcInfo = tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]

#: RFC 9110 5.6.2's tchar: what a header name (a token) is made of
TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters
#: RFC 9110 5.5 and 15: a field value and a reason phrase hold no control character but HTAB
#: (CR and LF would split the head; the others reach the HTTP client through nginx as they
#: are). Latin-1's C1 range is obs-text, which the RFC tolerates.
FIELD_CONTROLS = "".join(chr(c) for c in (*range(0x09), *range(0x0A, 0x20), 0x7F))
_TOKEN = re.compile(f"[{re.escape(TOKEN_CHARS)}]+\\Z")
_STATUS = re.compile(f"[1-9][0-9][0-9](?: [^{re.escape(FIELD_CONTROLS)}]*)?\\Z")
_BAD_VALUE = re.compile(f"[{re.escape(FIELD_CONTROLS)}]")

_TRUE = frozenset({"on", "1", "yes", "true"})
#: Role.name is a Python-level property of enum: looked up once here, not per request
_ROLE_NAMES = {role: role.name for role in Role}
# These never describe the request body (CGI has CONTENT_*) and HTTP_PROXY is httpoxy.
_DROPPED_PARAMS = frozenset({"HTTP_CONTENT_LENGTH", "HTTP_CONTENT_TYPE", "HTTP_PROXY"})
#: Environ keys only the server and the middleware set, in any case: a param named so is
#: dropped, or a peer could forge what the middleware trusts (fcgikit.duplicate_params).
#: No web server sends such a name unless told to (fastcgi_param, SetEnv).
RESERVED_PREFIXES = ("wsgi.", "fcgikit.")
#: The CGI variables PEP 3333 requires, with what the environ gets when the web server did
#: not send one. The names filled in are listed in environ["fcgikit.missing_params"]: a
#: fixer must tell "not sent" from "sent empty" (nginx's stock fastcgi_params send no
#: PATH_INFO and the whole path as SCRIPT_NAME; an empty PATH_INFO means something else).
_CGI_DEFAULTS = (
    ("REQUEST_METHOD", "GET"),
    ("SCRIPT_NAME", ""),
    ("PATH_INFO", ""),
    ("QUERY_STRING", ""),
    ("SERVER_NAME", "localhost"),
    ("SERVER_PORT", "80"),
    ("SERVER_PROTOCOL", "HTTP/1.1"),
)
#: What a request waiting for a thread holds besides its params and its body's bytes (its
#: WSGIRequest, RequestBody, event, the pool's entry; not its connection's, which an idle
#: connection holds too), and what each param decoded into a dict holds besides its own
#: bytes (an object for its name and for its value, the dict's entry), in bytes: a little
#: above what tracemalloc measures (tests/server/test_queued_memory.py holds them to it).
REQUEST_MEMORY: Final = 1024
DECODED_PAIR_MEMORY: Final = 128
#: A body still arriving when its request is admitted keeps at most this
#: much unread in memory from then on (the rest goes to its spool file): it counts for that.
WAITING_BODY_MEMORY: Final = 16 * 1024

EnvironFromParams = Callable[
    [Mapping[str, object], dict[bytes, bytes], frozenset[str]], dict[str, Any] | None
]
EncodeHead = Callable[[object, object, int | None], bytes | None]


def give_header_rules(set_header_rules: Callable[[bytes, bytes, tuple[bytes, ...]], None]) -> None:
    """Hand the rules above to the C lane (its ``_set_header_rules``), which keeps no copy of
    its own and answers None until it has them."""
    set_header_rules(
        TOKEN_CHARS.encode("latin-1"),
        FIELD_CONTROLS.encode("latin-1"),
        tuple(prefix.encode("ascii") for prefix in RESERVED_PREFIXES),
    )


#: The C fast lane (_speedups_wsgi.c) for two steps of every request: building the environ
#: and encoding the head. None where it was not built, or with FCGIKIT_PURE_PYTHON=1. The
#: Python functions below are the spec. _fast_environ returns what _environ_from_params_py
#: returns, or None when a param has a reserved name (RESERVED_PREFIXES); then the Python
#: drops it. _fast_encode_head returns what _encode_head_py returns, or None for anything
#: unusual; then _encode_head_py runs and raises its precise error.
_fast_environ: EnvironFromParams | None
_fast_encode_head: EncodeHead | None
try:
    from fcgikit.server import _speedups_wsgi
except ImportError:
    _fast_environ = None
    _fast_encode_head = None
else:
    give_header_rules(_speedups_wsgi._set_header_rules)
    _fast_environ = _speedups_wsgi.environ_from_params
    _fast_encode_head = _speedups_wsgi.encode_head

#: What an app raises to have its process exit. A request cannot stop the server: it gets a
#: 500 like any other error, and the server goes on (a pool worker retires after it, see
#: fcgikit.server.worker.RequestTracker).
PROCESS_EXITS = (SystemExit, KeyboardInterrupt)

ERROR_PAGE = (
    b"<!doctype html>\n<title>500 Internal Server Error</title>\n"
    b"<h1>Internal Server Error</h1>\n<p>The application failed to answer this request.</p>\n"
)


class ResponseSink(Protocol):
    """Where a request's output goes: a FastCGI connection (a
    :class:`~fcgikit.server.reply.ReplySender`), or stdout in CGI mode. Each method raises
    :class:`WebServerGone` when nobody listens."""

    def send_output(self, request: WSGIRequest, data: bytes) -> None: ...
    def send_stderr(self, request: WSGIRequest, data: bytes) -> None: ...
    def finish(
        self, request: WSGIRequest, head: bytes, body: bytes, app_status: int
    ) -> Reply | None:
        """End the response: ``head`` (its CGI header block, if not sent yet) and ``body``
        are its last bytes; ``app_status`` goes in FCGI_END_REQUEST. Returns what is left to
        send, for the pool to send and then end the request with (``Reply.done``); None if
        it went out already."""

    def request_done(self, request: WSGIRequest, *, on_loop: bool) -> None:
        """The request is over, its reply sent if it had one. ``on_loop``: the calling
        thread holds the loop role, and no rescue can take it meanwhile (see
        :class:`~fcgikit.server.pool.Reply`)."""

    def web_server_gone(self) -> bool:
        """Whether the web server has closed the connection (its EOF waits behind what was
        read). A system call: only for a request that may have waited long to run."""


class WebServerGone(Exception):
    """The web server closed the connection or aborted the request; stop producing output."""


class InvalidResponse(Exception):
    """The app's status or headers cannot be sent (a control character, non-latin-1, a name
    that is not a token)."""


class ErrorStream:
    """``wsgi.errors``: each write goes to the log and to the request's FCGI_STDERR stream."""

    def __init__(self, request: WSGIRequest) -> None:
        self._request = request

    def write(self, text: str) -> int:
        if text:
            log.warning("request %s: %s", self._request.label, text.rstrip("\n"))
            self._request.send_stderr(text.encode("utf-8", "replace"))
        return len(text)

    def writelines(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass


class FileWrapper:
    """``wsgi.file_wrapper``: iterate a file in blocks and close it when done."""

    def __init__(self, filelike: IO[bytes], blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> Iterator[bytes]:
        while True:
            block = self.filelike.read(self.blksize)
            if not block:
                return
            yield block

    def close(self) -> None:
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def url_scheme(environ: dict[str, Any]) -> str:
    if str(environ.get("HTTPS", "")).lower() in _TRUE:
        return "https"
    scheme = str(environ.get("REQUEST_SCHEME", "")).lower()
    return scheme if scheme in ("http", "https") else "http"


def _environ_from_params_py(
    base: Mapping[str, object], params: dict[bytes, bytes], dropped: frozenset[str]
) -> dict[str, Any]:
    """``base`` plus the params in one pass, names and values decoded latin-1 (PEP 3333),
    except the ``dropped`` names and the reserved ones (RESERVED_PREFIXES)."""
    environ: dict[str, Any] = dict(base)
    reserved: list[str] | None = None
    for name, value in params.items():
        key = name.decode("latin-1")
        if key in dropped:
            continue
        # A reserved name has a dot, which no CGI or HTTP_* name has: the one test most
        # names meet, and a cheaper one than any on the first letter.
        if "." in key and key.lower().startswith(RESERVED_PREFIXES):
            if reserved is None:
                reserved = []
            reserved.append(key)
            continue
        environ[key] = value.decode("latin-1")
    if reserved is not None:
        log.debug(
            "dropped %d param(s) with a reserved name (wsgi.*, fcgikit.*): %s",
            len(reserved),
            ", ".join(repr(key) for key in reserved[:5]),
        )
    return environ


def _fill_cgi_defaults(environ: dict[str, Any]) -> None:
    """Put in the CGI variables the web server did not send (_CGI_DEFAULTS), and name them
    in ``environ["fcgikit.missing_params"]``."""
    missing = []
    for key, default in _CGI_DEFAULTS:
        if key not in environ:
            environ[key] = default
            missing.append(key)
    environ["fcgikit.missing_params"] = frozenset(missing)


def _encode_head_py(status: object, headers: Iterable[object], content_length: int | None) -> bytes:
    """The CGI head: Status line, headers, a Content-Length when ``content_length`` is given
    and the app sent none, blank line. Raises InvalidResponse for what cannot be sent."""
    if not isinstance(status, str) or not _STATUS.match(status):
        raise InvalidResponse(f"bad status line {status!r}")
    lines = [f"Status: {status}\r\n"]
    has_length = False
    for item in headers:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise InvalidResponse(f"a header must be a (name, value) tuple, not {item!r}")
        name, value = item
        if not isinstance(name, str) or not _TOKEN.match(name):
            raise InvalidResponse(f"bad header name {name!r}")
        if not isinstance(value, str) or _BAD_VALUE.search(value):
            raise InvalidResponse(f"bad value for header {name}: {value!r}")
        if name.lower() == "content-length":
            has_length = True
        lines.append(f"{name}: {value}\r\n")
    if content_length is not None and not has_length:
        lines.append(f"Content-Length: {content_length}\r\n")
    lines.append("\r\n")
    try:
        return "".join(lines).encode("latin-1")
    except UnicodeEncodeError as exc:
        raise InvalidResponse(
            f"a header is not latin-1: {exc.object[exc.start : exc.end]!r}"
        ) from exc


def _content_length(params: Mapping[bytes, bytes]) -> int | None:
    raw = params.get(b"CONTENT_LENGTH", b"").strip()
    return int(raw) if raw.isdigit() else None


def log_spool_failure(request: WSGIRequest, exc: OSError) -> None:
    """A body that could not go to its spool file (a full disk): the app gets a 500 when it
    reads it."""
    log.error(
        "request %s: cannot spool the request body: %s; it fails with 500",
        request.label,
        exc.strerror or exc,
    )


class WSGIRequest:
    def __init__(
        self,
        channel: ResponseSink,
        event: RequestReceived,
        app: WSGIApplication,
        settings: ServerSettings,
    ) -> None:
        self.channel = channel
        self.request_id = event.request_id
        self.event = event
        self.app = app
        self.settings = settings
        length = _content_length(event.params)
        self.body = RequestBody(
            content_length=length,
            spool_threshold=settings.spool_threshold,
            timeout=settings.body_timeout,
        )
        self.filter_data: RequestBody | None = None
        if event.role == Role.FILTER:
            data_length = event.params.get(b"FCGI_DATA_LENGTH", b"")
            self.filter_data = RequestBody(
                content_length=int(data_length) if data_length.isdigit() else None,
                spool_threshold=settings.spool_threshold,
                timeout=settings.body_timeout,
            )
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
        self._headers_sent = False
        self.status_code = 0
        self.bytes_sent = 0
        self._head_length = 0
        self.started = time.monotonic() if settings.observe_requests else 0.0

    @property
    def label(self) -> str:
        params = self.event.params
        method = params.get(b"REQUEST_METHOD", b"-").decode("latin-1")
        uri = params.get(b"REQUEST_URI") or params.get(b"SCRIPT_NAME", b"") + params.get(
            b"PATH_INFO", b""
        )
        return f"#{self.request_id} {method} {uri.decode('latin-1')}"

    def bound_waiting_memory(self) -> int:
        """About the most bytes this request holds until it runs: its params, and what of its
        body (and FILTER data) may be in memory by then, bounded first for a body still
        arriving (WAITING_BODY_MEMORY)."""
        event = self.event
        params = event.params
        memory = REQUEST_MEMORY + event.params_size + self._bound_body_memory(self.body)
        if type(params) is dict:
            memory += len(params) * DECODED_PAIR_MEMORY
        if self.filter_data is not None:
            memory += self._bound_body_memory(self.filter_data)
        return memory

    def _bound_body_memory(self, body: RequestBody) -> int:
        if not body.complete:
            try:
                body.limit_memory(WAITING_BODY_MEMORY)
            except OSError as exc:
                log_spool_failure(self, exc)
        return body.memory_bound()

    def fail_input(self, reason: str) -> None:
        """The web server has gone or aborted: wake the app out of every input stream."""
        self.body.fail(reason)
        if self.filter_data is not None:
            self.filter_data.fail(reason)

    # --- environ ---------------------------------------------------------------------------

    def build_environ(self) -> dict[str, Any]:
        settings = self.settings
        params = self.event.params
        if not isinstance(params, dict):  # a request with many params: decoded now, once
            params = params.decode() if isinstance(params, EncodedParams) else dict(params)
        environ = None
        if _fast_environ is not None:
            environ = _fast_environ(settings.base_environ, params, _DROPPED_PARAMS)
        if environ is None:  # no fast lane, or a reserved name, which the Python drops
            environ = _environ_from_params_py(settings.base_environ, params, _DROPPED_PARAMS)
        if not environ.get("CONTENT_LENGTH", "").strip():
            environ.pop("CONTENT_LENGTH", None)
        if not environ.get("CONTENT_TYPE"):
            environ.pop("CONTENT_TYPE", None)
        if not (
            "PATH_INFO" in environ
            and "SCRIPT_NAME" in environ
            and "QUERY_STRING" in environ
            and "REQUEST_METHOD" in environ
            and "SERVER_NAME" in environ
            and "SERVER_PORT" in environ
            and "SERVER_PROTOCOL" in environ
        ):
            _fill_cgi_defaults(environ)
        environ["wsgi.version"] = (1, 0)
        environ["wsgi.url_scheme"] = url_scheme(environ)
        environ["wsgi.input"] = self.body
        environ["wsgi.input_terminated"] = True
        environ["wsgi.errors"] = ErrorStream(self)
        environ["wsgi.multithread"] = settings.threads > 1
        environ["wsgi.multiprocess"] = settings.multiprocess
        environ["wsgi.run_once"] = False
        environ["wsgi.file_wrapper"] = FileWrapper
        environ["FCGI_ROLE"] = _ROLE_NAMES[self.event.role]
        environ["fcgikit.request_id"] = self.request_id
        if self.filter_data is not None:
            environ["fcgikit.filter_data"] = self.filter_data
        if self.event.duplicate_names:
            environ["fcgikit.duplicate_params"] = frozenset(
                name.decode("latin-1") for name in self.event.duplicate_names
            )
        return environ

    # --- the WSGI callables ----------------------------------------------------------------

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], object]:
        if exc_info is not None and exc_info[1] is not None:
            try:
                if self._headers_sent:
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
        if not isinstance(data, bytes | bytearray):
            raise TypeError(f"response body must be bytes, not {type(data).__name__}")
        if not self._headers_sent:
            self._send_stdout(self._encode_head(None) + data)
        elif data:
            self._send_stdout(bytes(data))

    # --- output ----------------------------------------------------------------------------

    def _encode_head(self, content_length: int | None) -> bytes:
        status = self._status
        if status is None:
            raise AssertionError("the application returned without calling start_response()")
        head = None
        if _fast_encode_head is not None:
            head = _fast_encode_head(status, self._headers, content_length)
        if head is None:  # no fast lane, or something it leaves to the spec (an error, mostly)
            head = _encode_head_py(status, self._headers, content_length)
        self._head_length = len(head)
        self._headers_sent = True
        self.status_code = int(status[:3])
        return head

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
                reply = self._run_app()
        except WebServerGone as exc:
            self.aborted = True
            log.info("request %s: the web server went away (%s); output dropped", self.label, exc)
        except BaseException:
            # A fault of the server's own (_run_app answers all of the app's): the web server
            # must not wait for an END_REQUEST that will never come, so the connection closes.
            log.exception("request %s: unexpected error; closing its connection", self.label)
            self.close_connection = True
        finally:
            self.body.close()
            if self.filter_data is not None:
                self.filter_data.close()
            if reply is None:
                self.done(on_loop=False)
        return reply

    def done(self, *, on_loop: bool) -> None:
        """The request is over, its reply sent if it had one: its connection learns it (and
        may close: ``on_loop``, see ResponseSink.request_done), the status page's counters
        and the access log (ServerSettings.observe_requests)."""
        self.channel.request_done(self, on_loop=on_loop)
        if self.settings.observe_requests:
            self._observe(time.monotonic() - self.started)

    def _observe(self, duration: float) -> None:
        """The request is over, ``duration`` seconds after it arrived: count it for the
        status page, write its access log line (ServerSettings.observe_requests)."""
        settings = self.settings
        metrics = settings.metrics
        if metrics is not None:
            metrics.request_done(self.status_code, duration)
        access_format = settings.access_format
        if access_format == "default":
            params = self.event.params
            now = time.time()
            access_log.info(
                ACCESS_FORMAT,
                iso_time(now),
                params.get(b"REMOTE_ADDR", b"-").decode("latin-1"),
                params.get(b"REQUEST_METHOD", b"-").decode("latin-1"),
                request_uri(params).decode("latin-1"),
                self.status_code,
                max(0, self.bytes_sent - self._head_length),
                duration * 1000,
                os.getpid(),
            )
        elif access_format is not None:
            self._log_access_as(access_format, duration)

    def _log_access_as(self, access_format: str, duration: float) -> None:
        """The access log line in a format other than the default (--access-log-format)."""
        params = self.event.params
        body_bytes = max(0, self.bytes_sent - self._head_length)
        if access_format == "combined":
            line = combined_line(params, self.status_code, body_bytes, time.time())
        else:
            line = json_line(
                params, self.request_id, self.status_code, body_bytes, duration, time.time()
            )
        access_log.info("%s", line)

    def _run_app(self) -> Reply | None:
        """Call the app and produce its response; what is left to send (ResponseSink.finish)."""
        environ = self.build_environ()
        try:
            result = self.app(environ, self.start_response)
        except WebServerGone:
            raise
        except RequestBodyTimeout as exc:
            return self._body_stalled(exc)
        except RequestBodyError as exc:
            if self.aborted:  # the app was reading a body the web server gave up on
                raise WebServerGone(str(exc)) from exc
            return self._fail(sys.exc_info())
        except BaseException:  # sys.exit() and KeyboardInterrupt too (PROCESS_EXITS)
            return self._fail(sys.exc_info())
        try:
            head, body = self._produce(result)
        except WebServerGone:
            self._close_result(result)
            raise
        except RequestBodyTimeout as exc:
            self._close_result(result)
            return self._body_stalled(exc)
        except RequestBodyError as exc:
            self._close_result(result)
            if self.aborted:
                raise WebServerGone(str(exc)) from exc
            return self._fail(sys.exc_info())
        except BaseException:  # a broken iterable's GeneratorExit too
            self._close_result(result)
            return self._fail(sys.exc_info())
        # close() runs before END_REQUEST, so the app's teardown (Flask's teardown_request,
        # a database commit) is over by the time the web server sees the response complete.
        self._close_result(result)
        return self.channel.finish(self, head, body, 0)

    def _produce(self, result: Iterable[bytes]) -> tuple[bytes, bytes]:
        """Send the body; return what is left to go out with END_REQUEST: (head, body)."""
        if not self._headers_sent and isinstance(result, list | tuple):
            body = b"".join(result)
            return self._encode_head(len(body)), body
        # A first chunk as long as the declared Content-Length is the whole body (Flask's
        # and werkzeug's usual response): it waits to go out with END_REQUEST, in one send,
        # instead of two sends and two wake-ups of the web server.
        whole: bytes | None = None
        for chunk in result:
            if not chunk:
                continue
            if whole is not None:  # more than it declared: stream after all
                self.write(whole)
                whole = None
            if not self._headers_sent and self._declares_length(len(chunk)):
                whole = chunk
            else:
                self.write(chunk)
        if whole is not None:
            if not isinstance(whole, bytes | bytearray):
                raise TypeError(f"response body must be bytes, not {type(whole).__name__}")
            return self._encode_head(None), whole
        return (b"" if self._headers_sent else self._encode_head(0)), b""

    def _declares_length(self, size: int) -> bool:
        """The headers say Content-Length: ``size`` (malformed ones are _encode_head's job)."""
        for item in self._headers:
            if (
                isinstance(item, tuple)
                and len(item) == 2
                and isinstance(item[0], str)
                and item[0].lower() == "content-length"
            ):
                return str(item[1]).strip() == str(size)
        return False

    def _close_result(self, result: Iterable[bytes]) -> None:
        if type(result) is list:
            # The usual hello-world answer has no close(). Compiled, getattr() with a default
            # formats the AttributeError's message before dropping it.
            return
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except BaseException:
                log.exception("request %s: the app's close() raised", self.label)

    def _body_stalled(self, exc: RequestBodyTimeout) -> Reply | None:
        """One log line, a 408 if nothing was sent yet, and the connection closed after."""
        log.warning("request %s: %s; answering 408, closing the connection", self.label, exc)
        self.close_connection = True
        if self._headers_sent:
            return self.channel.finish(self, b"", b"", 1)
        page = b"Request Timeout: the request body stopped arriving.\n"
        self._status = "408 Request Timeout"
        self._headers = [("Content-Type", "text/plain; charset=utf-8")]
        return self.channel.finish(self, self._encode_head(len(page)), page, 1)

    def _fail(self, exc_info: Any) -> Reply | None:
        exc = exc_info[1]
        if isinstance(exc, RequestBodyError):
            pass  # not the app's fault, and already logged where the body failed (a full disk)
        elif isinstance(exc, InvalidResponse):
            log.error("request %s: invalid response from the app: %s", self.label, exc)
        else:
            log.error(
                "request %s: the app raised %s: %s%s",
                self.label,
                type(exc).__name__,
                exc,
                " (a request does not stop the server)" if isinstance(exc, PROCESS_EXITS) else "",
                exc_info=exc_info,
            )
        if self._headers_sent:
            # Too late for a 500. nginx ignores FCGI_END_REQUEST's appStatus and would end
            # the client's response normally (a final chunk, a complete-looking body); only
            # a connection closed before END_REQUEST makes it cut the client off, so the
            # truncation shows. request_done releases the id and closes.
            self.close_connection = True
            return None
        page = ERROR_PAGE
        if self.settings.debug:
            text = "".join(traceback.format_exception(*exc_info))
            page += b"<pre>" + html.escape(text).encode("utf-8", "replace") + b"</pre>\n"
        self._status = "500 Internal Server Error"
        self._headers = [("Content-Type", "text/html; charset=utf-8")]
        return self.channel.finish(self, self._encode_head(len(page)), page, 1)
