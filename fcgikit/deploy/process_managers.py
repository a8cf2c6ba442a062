"""Configs that run ``fcgikit serve`` itself: a supervisord program and systemd units.

Both open the listening socket and hand it to fcgikit on fd 0, as a web server's spawner
would, so fcgikit runs with no ``--bind``.
"""

from __future__ import annotations

import os

from fcgikit.deploy.target import Target


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
    """A ``.socket`` and a ``.service`` unit that runs ``command serve app`` as ``user``."""
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
        f"ExecStart={command} serve {app} --chdir {chdir}\n"
        "# The listening socket on fd 0, as a web server's spawner would pass it.\n"
        "StandardInput=socket\n"
        "StandardOutput=journal\n"
        "StandardError=journal\n"
        f"User={user}\n"
        f"WorkingDirectory={chdir}\n"
        "KillSignal=SIGTERM\n"
        "Restart=on-failure\n"
        "\n"
        "[Install]\n"
        "WantedBy=multi-user.target\n"
    )
