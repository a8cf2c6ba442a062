"""The Caddy config: ``reverse_proxy`` with the fastcgi transport, ``split`` at the mount."""

from __future__ import annotations

from fcgikit.deploy.target import Target


def caddy_config(mount: str, target: Target) -> str:
    """The lines for the site block."""
    upstream = f"unix/{target.socket}" if target.is_unix else f"{target.host}:{target.port}"
    if not mount:
        return (
            "# Caddy: put this inside your site block (example.com { ... }).\n"
            f"reverse_proxy {upstream} {{\n"
            "    transport fastcgi\n"
            "}\n"
        )
    return (
        "# Caddy: put this inside your site block (example.com { ... }).\n"
        "# 'split' makes Caddy send SCRIPT_NAME = the mount and PATH_INFO = the rest\n"
        "# (handle_path would strip the mount and lose it; then use MountFix).\n"
        f"@yourapplication path {mount} {mount}/*\n"
        f"reverse_proxy @yourapplication {upstream} {{\n"
        "    transport fastcgi {\n"
        f"        split {mount}\n"
        "    }\n"
        "}\n"
    )
