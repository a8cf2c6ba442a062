"""The exceptions fcgikit raises.

One root, :class:`FcgikitError`, so a caller can catch everything of ours at once.
Protocol errors are split the way h11 splits them: :class:`RemoteProtocolError` means the
peer sent something the FastCGI spec does not allow (close the connection, log one line);
:class:`LocalProtocolError` means our own code misused the protocol API (a bug here).

This module is not compiled (setup.py): mypyc cannot compile a class that derives from
:class:`OSError`, as :class:`RequestBodyError` does.
"""

from __future__ import annotations


class FcgikitError(Exception):
    """Base class of every exception fcgikit raises on purpose."""


class ProtocolError(FcgikitError):
    """Something broke the FastCGI protocol."""


class LocalProtocolError(ProtocolError):
    """Our side tried to send something the protocol state does not allow."""


class RemoteProtocolError(ProtocolError):
    """The peer sent bytes that are not valid FastCGI, or went over a configured cap.

    This is the only exception that peer input may cause in :mod:`fcgikit.protocol`.
    """


class RequestBodyError(FcgikitError, OSError):
    """``wsgi.input`` can no longer be read: the web server aborted the request, or spooling
    the body to disk failed. An :class:`OSError`, as apps expect of a broken input stream."""


class RequestBodyTimeout(RequestBodyError):
    """No byte of the request body arrived for ``body_timeout`` seconds (a stalled or
    slow-drip client)."""


class ConfigError(FcgikitError):
    """A setting, address or application path is wrong; the message says what to do."""
