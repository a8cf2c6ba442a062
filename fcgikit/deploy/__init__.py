"""Web server and process manager configs for an app served by fcgikit.

``fcgikit config SERVER`` prints one of these. Each config is the one the integration suite
(``tests/integration``) runs against the real server, so what is printed here is what was
tested. Where a server can be told to send the right ``SCRIPT_NAME`` and ``PATH_INFO`` on its
own, the config does that and needs no fixer; where it cannot, the first comment line names the
:mod:`fcgikit.middleware` fixer to wrap the app in::

    >>> print(render("nginx", mount="/yourapplication", socket="/run/app.sock"))  # doctest: +SKIP
    # nginx: put this inside your server { } block.
    # no fixer needed: this config sends SCRIPT_NAME and PATH_INFO right
    ...

What the servers send without these configs, and why each setting is there, is written down
in ``docs/`` and in the research notes the tests cite.

One module per web server writes its config (``nginx``, ``apache``, ``lighttpd``, ``caddy``,
``h2o``, ``haproxy``; ``process_managers`` for supervisor and systemd); ``target`` checks where
the app is, ``config`` holds :func:`render` and the table of servers, and ``command`` is
``fcgikit config``'s options.
"""

from __future__ import annotations

from fcgikit.deploy.config import SERVERS, Fixer, recommended_fixer, render
from fcgikit.deploy.target import Target

__all__ = ["SERVERS", "Fixer", "Target", "recommended_fixer", "render"]
