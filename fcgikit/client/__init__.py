"""A blocking FastCGI client, and a WSGI app that forwards HTTP requests to a FastCGI backend.

What ``cgi-fcgi`` is to C programs, :class:`FastCGIClient` is to Python: it connects to a
FastCGI application, sends one request with the params a web server would send, and returns
the parsed response. fcgikit's tests use it to talk to a real server without nginx, and
``fcgikit request`` is built on it. :class:`FastCGIGateway` wraps it as a WSGI application,
which ``fcgikit serve --http`` puts in front of the server for development.

>>> client = FastCGIClient("unix:/run/app.sock")               # doctest: +SKIP
>>> response = client.request("POST", "/form", body=b"a=1")    # doctest: +SKIP
>>> response.status, response.header("Content-Type")            # doctest: +SKIP
(200, 'text/html; charset=utf-8')

The parts: ``blocking`` (the client and :func:`connect`), ``response`` (the CGI response
parsed), ``body`` (a request body, bytes or a file read as it is sent) and ``gateway``.
"""

from __future__ import annotations

from fcgikit.client.blocking import SEND_BATCH_SIZE as SEND_BATCH_SIZE
from fcgikit.client.blocking import FastCGIClient, connect
from fcgikit.client.body import BODY_CHUNK_SIZE as BODY_CHUNK_SIZE
from fcgikit.client.body import Body as Body
from fcgikit.client.body import ReadableBody as ReadableBody
from fcgikit.client.gateway import FastCGIGateway
from fcgikit.client.response import FastCGIResponse

__all__ = ["FastCGIClient", "FastCGIGateway", "FastCGIResponse", "connect"]
