"""fcgikit: put any WSGI app behind a real web server over FastCGI."""

from fcgikit.compat import WSGIServer
from fcgikit.middleware import (
    HeaderFix,
    LighttpdRootFix,
    MountFix,
    Normalize,
    ProxyFix,
    ScriptNameStripper,
    StdoutGuard,
    guard_stdout,
    unguard_stdout,
    wrap,
)
from fcgikit.protocol.constants import FCGI_AUTHORIZER, FCGI_FILTER, FCGI_RESPONDER

__version__ = "0.1.0"

__all__ = [
    "FCGI_AUTHORIZER",
    "FCGI_FILTER",
    "FCGI_RESPONDER",
    "HeaderFix",
    "LighttpdRootFix",
    "MountFix",
    "Normalize",
    "ProxyFix",
    "ScriptNameStripper",
    "StdoutGuard",
    "WSGIServer",
    "__version__",
    "guard_stdout",
    "unguard_stdout",
    "wrap",
]
