"""The FastCGI server: sockets, threads, signals and the WSGI environ."""

from fcgikit.server.listeners import inherited_listener, open_listener
from fcgikit.server.server import Server
from fcgikit.server.settings import ServerSettings

__all__ = ["Server", "ServerSettings", "inherited_listener", "open_listener"]
