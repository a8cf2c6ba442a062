"""The FastCGI server: sockets, threads, signals and the WSGI environ.

:class:`Server` is imported on first use (PEP 562): ``fcgikit serve`` reads its settings and
binds its sockets before it loads the server's modules, so a web server's first requests wait
in the backlog instead of being refused while they load.
"""

from typing import TYPE_CHECKING, Any

from fcgikit.server.listeners import inherited_listener, open_listener
from fcgikit.server.settings import ServerSettings

if TYPE_CHECKING:
    from fcgikit.server.server import Server


def __getattr__(name: str) -> Any:
    if name != "Server":
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from fcgikit.server.server import Server

    globals()[name] = Server
    return Server


def __dir__() -> list[str]:
    return sorted({*globals(), "Server"})


__all__ = ["Server", "ServerSettings", "inherited_listener", "open_listener"]
