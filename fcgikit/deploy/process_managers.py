"""Configs that run ``fcgikit serve`` itself: a supervisord program and systemd units.

Both open the listening socket and hand it to fcgikit on fd 0, as a web server's spawner
would, so fcgikit runs with no ``--bind``. The systemd service is ``Type=notify``: fcgikit
says when it serves, reloads and stops (:mod:`fcgikit.server.notify`).
"""

from __future__ import annotations

import math
import os

from fcgikit.deploy.target import Target
from fcgikit.server.keeper import KILL_MARGIN
from fcgikit.server.settings import ServerSettings

#: seconds systemd waits beyond fcgikit's own stop before it kills what is left: the time a
#: process takes to exit once its requests are over
EXIT_MARGIN = 3


def stop_timeout(settings: ServerSettings) -> int:
    """Seconds from SIGTERM to the exit of ``fcgikit serve`` with ``settings``, at most:
    the drain (--shutdown-delay), then the running requests' grace (--graceful-timeout),
    the margin a pool's master gives its workers before SIGKILL, and the exit itself."""
    return math.ceil(settings.shutdown_delay + settings.graceful_timeout + KILL_MARGIN) + (
        EXIT_MARGIN
    )


def supervisor_config(target: Target, app: str, chdir: str, user: str, command: str) -> str:
    """An ``[fcgi-program]`` that runs ``command serve app`` (or the ``.fcgi``) as ``user``."""
    socket = f"unix://{target.socket}" if target.is_unix else f"tcp://{target.host}:{target.port}"
    owner = f"socket_owner = {user}:{user}\nsocket_mode = 0660\n" if target.is_unix else ""
    if target.spawn:
        # the guide's yourapplication.fcgi: WSGIServer(app).run() serves the socket on fd 0
        run = target.spawn
        chdir = os.path.dirname(target.spawn) or chdir
    else:
        run = f"{command} serve {app} --chdir {chdir}"
    return (
        "# supervisord: /etc/supervisor/conf.d/yourapplication.conf\n"
        "# supervisord opens the socket and hands it to fcgikit on fd 0.\n"
        "[fcgi-program:yourapplication]\n"
        f"socket = {socket}\n"
        f"{owner}"
        f"command = {run}\n"
        f"directory = {chdir}\n"
        f"user = {user}\n"
        "numprocs = 1\n"
        "process_name = %(program_name)s_%(process_num)02d\n"
        "stopsignal = TERM\n"
        "autorestart = true\n"
        "redirect_stderr = true\n"
    )


def systemd_config(target: Target, app: str, chdir: str, user: str, command: str) -> str:
    """A ``.socket`` and a ``Type=notify`` ``.service`` unit that runs ``command serve app``
    as ``user``."""
    defaults = ServerSettings()
    if target.is_unix:
        listen = (
            f"ListenStream={target.socket}\nSocketUser={user}\nSocketGroup={user}\n"
            "SocketMode=0660\n"
        )
    else:
        listen = f"ListenStream={target.host}:{target.port}\n"
    return (
        "# systemd: two units. Enable with: systemctl enable --now yourapplication.socket\n"
        "# /etc/systemd/system/yourapplication.socket\n"
        "[Unit]\n"
        "Description=yourapplication FastCGI socket\n"
        "\n"
        "[Socket]\n"
        f"{listen}"
        "\n"
        "[Install]\n"
        "WantedBy=sockets.target\n"
        "\n"
        "# /etc/systemd/system/yourapplication.service\n"
        "[Unit]\n"
        "Description=yourapplication (fcgikit)\n"
        "Requires=yourapplication.socket\n"
        "After=network.target\n"
        "\n"
        "[Service]\n"
        "# fcgikit tells systemd when it serves (READY=1), reloads and stops; only the main\n"
        "# process, a pool's master, speaks for the service.\n"
        "Type=notify\n"
        "NotifyAccess=main\n"
        f"ExecStart={command} serve {app} --chdir {chdir}\n"
        "# systemctl reload: a reload without a failed request; systemd waits for fcgikit's\n"
        "# READY=1 after it. (systemd 253 and later: Type=notify-reload does this alone.)\n"
        "ExecReload=/bin/kill -HUP $MAINPID\n"
        "# The listening socket on fd 0, as a web server's spawner would pass it.\n"
        "StandardInput=socket\n"
        "StandardOutput=journal\n"
        "StandardError=journal\n"
        f"User={user}\n"
        f"WorkingDirectory={chdir}\n"
        "# SIGTERM to fcgikit alone (a pool's master stops its workers itself), SIGKILL to\n"
        "# whatever is left once TimeoutStopSec is over.\n"
        "KillSignal=SIGTERM\n"
        "KillMode=mixed\n"
        f"# --shutdown-delay ({defaults.shutdown_delay:g}) + --graceful-timeout "
        f"({defaults.graceful_timeout:g}) + {KILL_MARGIN:g} s for a\n"
        f"# pool's workers + {EXIT_MARGIN} s to exit: raise it with those two options.\n"
        f"TimeoutStopSec={stop_timeout(defaults)}\n"
        "# Restart fcgikit when its loop stops answering for this long (it says so twice as\n"
        "# often):\n"
        "#WatchdogSec=30\n"
        "Restart=on-failure\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
