"""The lighttpd config: a ``fastcgi.server`` entry, connecting or spawning the ``.fcgi``."""

from __future__ import annotations

from fcgikit.deploy.target import Target


def lighttpd_config(mount: str, target: Target) -> str:
    """The ``fastcgi.server`` entry for the app at ``mount``."""
    key = mount or "/"
    lines = []
    if target.is_unix:
        lines.append(f'"socket" => "{target.socket}",')
    else:
        lines.append(f'"host" => "{target.host}",')
        lines.append(f'"port" => {target.port},')
    if target.spawn:
        lines.append(f'"bin-path" => "{target.spawn}",')
        lines.append('"max-procs" => 1,')
    lines.append('"check-local" => "disable",')
    if not mount:
        # Without it lighttpd puts the first path segment into SCRIPT_NAME at "/".
        lines.append('"fix-root-scriptname" => "enable",')
    body = "".join(f"        {line}\n" for line in lines)
    spawn_note = (
        "# lighttpd starts the .fcgi itself (bin-path); the socket reaches it on fd 0.\n"
        "# lighttpd creates the socket as its own user: the directory must exist and be\n"
        "# writable by that user (Debian's lighttpd makes /run/lighttpd for www-data).\n"
        if target.spawn
        else ""
    )
    return (
        "# lighttpd: add to lighttpd.conf (or conf-enabled/).\n"
        f"{spawn_note}"
        'server.modules += ( "mod_fastcgi" )\n'
        "fastcgi.server = (\n"
        f'    "{key}" => ((\n'
        f"{body}"
        "    )),\n"
        ")\n"
    )
