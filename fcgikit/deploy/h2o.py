"""The h2o config: ``fastcgi.connect`` (or ``fastcgi.spawn``) under ``paths:``."""

from __future__ import annotations

from fcgikit.deploy.target import Target


def h2o_config(mount: str, target: Target) -> str:
    """The ``paths:`` entry for the host."""
    key = mount or "/"
    if target.spawn:
        handler = f'    fastcgi.spawn: "exec {target.spawn}"\n'
    elif target.is_unix:
        handler = f"    fastcgi.connect:\n      port: {target.socket}\n      type: unix\n"
    else:
        handler = (
            "    fastcgi.connect:\n"
            f"      host: {target.host}\n      port: {target.port}\n      type: tcp\n"
        )
    return f'# h2o: put this under hosts: "example.com:80":\npaths:\n  "{key}":\n{handler}'
