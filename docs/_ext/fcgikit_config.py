"""``.. fcgikit-config::``: the output of ``fcgikit config ...``, produced while the docs build.

The deployment pages never paste a web server config. They name the command, and this
directive runs the same code the command runs (``fcgikit.deploy.command.config_text``,
which calls :func:`fcgikit.deploy.render`), which is the code the integration suite starts
real web servers with. A config on a page is therefore the config that was tested, and a change to
``fcgikit/deploy`` shows up in the docs on the next build.

.. code-block:: rst

   .. fcgikit-config:: nginx --mount /yourapplication --socket unix:/run/yourapplication/fcgi.sock

The argument is parsed by the ``fcgikit config`` parser itself, so it accepts exactly what
the command accepts; an option the command refuses is a build error, not a stale page.
"""

from __future__ import annotations

import contextlib
import io
import shlex
from typing import Any

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.directives.code import container_wrapper
from sphinx.util.docutils import SphinxDirective

from fcgikit.cli import _build_parser
from fcgikit.deploy.command import config_text
from fcgikit.errors import ConfigError

#: Pygments lexer for each server's config language.
LANGUAGES = {
    "nginx": "nginx",
    "apache-fcgid": "apacheconf",
    "apache-htaccess": "apacheconf",
    "apache-proxy-fcgi": "apacheconf",
    "lighttpd": "lighttpd",
    "caddy": "text",  # Pygments has no Caddyfile lexer
    "h2o": "yaml",
    "haproxy": "text",  # Pygments has no HAProxy lexer
    "supervisor": "ini",
    "systemd": "systemd",
}


def config_command(argument: str) -> tuple[list[str], str]:
    """Parse ``SERVER [options]`` as ``fcgikit config`` does; return (argv, rendered config)."""
    argv = ["config", *shlex.split(argument)]
    with contextlib.redirect_stderr(io.StringIO()) as usage:
        try:
            args = _build_parser().parse_args(argv)
        except SystemExit:
            raise ConfigError(usage.getvalue().strip().splitlines()[-1]) from None
    return argv, config_text(args)


class FcgikitConfig(SphinxDirective):
    """Render ``fcgikit config ARGUMENTS`` as a literal block captioned with the command."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = False

    def run(self) -> list[nodes.Node]:
        try:
            argv, text = config_command(self.arguments[0])
        except ConfigError as exc:
            raise self.error(f"fcgikit {' '.join(['config', self.arguments[0]])}: {exc}") from exc
        block = nodes.literal_block(text, text.rstrip("\n"))
        block["language"] = LANGUAGES.get(argv[1], "text")
        self.set_source_info(block)
        caption = f"``$ fcgikit {shlex.join(argv)}``"
        self.env.note_dependency(__file__)
        return [container_wrapper(self, block, caption)]


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_directive("fcgikit-config", FcgikitConfig)
    return {"version": "1", "parallel_read_safe": True, "parallel_write_safe": True}
