"""WSGI middleware that makes an app behind a FastCGI web server see the right URLs.

One fixer per module, each usable on its own (``app.wsgi_app = MountFix(app.wsgi_app, "/x")``)
or stacked by :func:`wrap`. Every fixer keeps the values it changed in
``environ["fcgikit.orig"]`` and leaves the keys it does not own alone. Nothing here imports
fcgikit's server or protocol.
"""

from fcgikit.middleware.header_fix import HeaderFix
from fcgikit.middleware.lighttpd_root_fix import LighttpdRootFix
from fcgikit.middleware.mount_fix import MountFix
from fcgikit.middleware.normalize import Normalize
from fcgikit.middleware.proxy_fix import ProxyFix
from fcgikit.middleware.script_name_stripper import ScriptNameStripper
from fcgikit.middleware.stack import wrap
from fcgikit.middleware.stdout_guard import (
    StdoutGuard,
    StdoutRestrictedError,
    guard_stdout,
    unguard_stdout,
)

__all__ = [
    "HeaderFix",
    "LighttpdRootFix",
    "MountFix",
    "Normalize",
    "ProxyFix",
    "ScriptNameStripper",
    "StdoutGuard",
    "StdoutRestrictedError",
    "guard_stdout",
    "unguard_stdout",
    "wrap",
]
