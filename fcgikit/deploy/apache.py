"""The Apache configs: mod_fcgid with ``ScriptAlias``, the shared host's ``.htaccess``, and
mod_proxy_fcgi.

mod_fcgid starts the ``.fcgi`` itself; the ``.htaccess`` recipe is the guide's, for a host
where only that file can be written (its SCRIPT_NAME names the script file, so the app needs
MountFix); mod_proxy_fcgi connects to ``fcgikit serve``.
"""

from __future__ import annotations

from fcgikit.deploy.target import DEFAULT_SPAWN, Target


def apache_fcgid_config(mount: str, target: Target) -> str:
    """mod_fcgid with ``ScriptAlias``, for the ``<VirtualHost>``."""
    spawn = target.spawn or DEFAULT_SPAWN
    directory, _, filename = spawn.rpartition("/")
    alias = f"ScriptAlias {mount} {spawn}\n" if mount else f"ScriptAlias / {spawn}/\n"
    return (
        "# Apache + mod_fcgid (a2enmod fcgid): put this inside your <VirtualHost>.\n"
        "# Apache starts the .fcgi itself; the socket reaches it on fd 0.\n"
        "# mod_fcgid refuses request bodies over 128 KiB unless told otherwise:\n"
        "FcgidMaxRequestLen 1073741824\n"
        f"{alias}"
        f'<Directory "{directory or "/"}">\n'
        f'    <Files "{filename}">\n'
        "        SetHandler fcgid-script\n"
        "        Options +ExecCGI\n"
        "    </Files>\n"
        "    Require all granted\n"
        "</Directory>\n"
    )


def htaccess_config(mount: str, target: Target) -> str:
    """The ``.htaccess`` next to the ``.fcgi`` (mod_fcgid and mod_rewrite)."""
    spawn = target.spawn or DEFAULT_SPAWN
    filename = spawn.rpartition("/")[2]
    where = f"the directory that serves {mount}/" if mount else "the document root"
    return (
        f"# .htaccess in {where}, next to {filename}.\n"
        "# Needs mod_fcgid and mod_rewrite, and AllowOverride FileInfo Options (or All).\n"
        "# mod_fcgid's FcgidMaxRequestLen (default 128 KiB) can only be raised in the server\n"
        "# config, not here: bigger uploads fail with 500 on hosts that keep the default.\n"
        "<IfModule mod_fcgid.c>\n"
        "    <Files ~ (\\.fcgi$)>\n"
        "        SetHandler fcgid-script\n"
        "        Options +FollowSymLinks +ExecCGI\n"
        "    </Files>\n"
        "</IfModule>\n"
        "# Everything that is not a file goes to the .fcgi. The path is not copied into the\n"
        "# rewrite (the guide's 'RewriteRule ^(.*)$ app.fcgi/$1'): a decoded %3F in $1 is\n"
        "# refused with 403 by Apache 2.4.60+; MountFix reads the path from REQUEST_URI.\n"
        "<IfModule mod_rewrite.c>\n"
        "    Options +FollowSymlinks\n"
        "    RewriteEngine On\n"
        f"    RewriteBase {mount}/\n"
        "    RewriteCond %{REQUEST_FILENAME} !-f\n"
        f"    RewriteRule ^ {filename} [L]\n"
        "</IfModule>\n"
    )


def apache_proxy_fcgi_config(mount: str, target: Target) -> str:
    """mod_proxy_fcgi with ``ProxyPass``, sending SCRIPT_NAME = the mount."""
    if target.is_unix:
        backend = f"unix:{target.socket}|fcgi://localhost"
    else:
        backend = f"fcgi://{target.host}:{target.port}"
    match = f"^{mount}(/|$)" if mount else "^/"
    proxy = f'ProxyPass "{mount}" "{backend}"\n' if mount else f'ProxyPass "/" "{backend}/"\n'
    return (
        "# Apache + mod_proxy_fcgi (a2enmod proxy_fcgi setenvif): inside your <VirtualHost>.\n"
        "# proxy-fcgi-pathinfo=unescape makes Apache send SCRIPT_NAME = the mount and a\n"
        "# decoded PATH_INFO; without it SCRIPT_NAME is the whole path and PATH_INFO is unset.\n"
        f'SetEnvIf Request_URI "{match}" proxy-fcgi-pathinfo=unescape\n'
        f"{proxy}"
    )
