"""``fcgikit serve``'s own settings: which app, from where, wrapped how, run how, logged where.

The server's settings are :class:`~fcgikit.server.settings.server.ServerSettings` and the
pool's :class:`~fcgikit.server.settings.pool.PoolSettings`; these are what the command does
around them (fcgikit/cli.py), declared the same way, so that they too come from the command
line, the environment or a config file.
"""

from __future__ import annotations

from fcgikit.addresses import TcpAddress, parse_address
from fcgikit.errors import ConfigError
from fcgikit.networks import TrustedNetworks
from fcgikit.protocol.frozen import frozen_dataclass
from fcgikit.server.settings.declaration import check_fields, setting
from fcgikit.server.settings.kinds import FLAG, Kind, choice, integer, networks, text, text_list
from fcgikit.server.settings.pool import parse_workers, workers_problem

#: ``--reload-engine``'s values, what :func:`fcgikit.server.sources.make_watcher` takes; here,
#: not there, so that declaring the setting does not import the reloader's module
ENGINES = ("auto", "watchfiles", "poll")

WORKERS = Kind(
    "N (a static pool) or MIN:MAX (a dynamic one)",
    parse_workers,
    metavar="N|MIN:MAX",
    native=(int,),
    from_native=lambda count: (count, count),
    check=lambda pair: workers_problem(*pair),
    show=lambda pair: str(pair[0]) if pair[0] == pair[1] else f"{pair[0]}:{pair[1]}",
)


def _host_and_port(text: str) -> TcpAddress:
    address = parse_address(text)
    if not isinstance(address, TcpAddress):
        raise ConfigError(f"--http takes HOST:PORT, not {text!r}")
    return address


HOST_AND_PORT = Kind("HOST:PORT or [IPv6]:PORT", _host_and_port, metavar="HOST:PORT")


#: whose proxy headers are believed when neither --forwarded-allow-ips nor FORWARDED_ALLOW_IPS
#: says: gunicorn's default, a proxy on this host (docs/operations.rst says why). Written as
#: TrustedNetworks.parse writes addresses back (tests/test_networks.py holds them to it), so
#: that every start does not run ipaddress's parsers for a default it seldom uses.
DEFAULT_FORWARDED_ALLOW_IPS = ("127.0.0.1", "::1")
#: the variable gunicorn users know for --forwarded-allow-ips
FORWARDED_ALLOW_IPS = "FORWARDED_ALLOW_IPS"

#: the levels of fcgikit's own log lines
LOG_LEVELS = ("debug", "info", "warning", "error")


@frozen_dataclass
class CommandSettings:
    """What ``fcgikit serve`` runs, and how."""

    app: str | None = setting(
        None,
        text(metavar="APP"),
        "the app: module:attr or module:factory(); a bare module name looks for app, then "
        "application",
        positional=True,
    )
    chdir: str | None = setting(
        None,
        text(metavar="DIR"),
        "change to DIR before importing APP (which is imported with the working directory "
        "on sys.path)",
    )
    workers: tuple[int, int] | None = setting(
        None,
        WORKERS,
        "worker processes: N for a static pool, MIN:MAX for one that grows while all are busy",
        short="-w",
        starts_pool=True,
        default_text="one process, no master",
    )
    http: TcpAddress | None = setting(
        None,
        HOST_AND_PORT,
        "also serve HTTP on HOST:PORT through a development front (werkzeug; for development only)",
    )
    mount: str | None = setting(
        None,
        text(metavar="PREFIX"),
        "the URL prefix the web server serves APP at ('' for the root): SCRIPT_NAME and "
        "PATH_INFO are rebuilt from REQUEST_URI (fcgikit.wrap / MountFix), whatever the "
        "web server sent",
    )
    proxy_hops: int = setting(
        0,
        integer(),
        "trust X-Forwarded-For/-Proto from N proxies in front of the web server (ProxyFix), "
        "when they come from --forwarded-allow-ips",
    )
    forwarded: int = setting(
        0,
        integer(),
        "trust the RFC 7239 Forwarded header (for=, proto=, host=) from N proxies in front "
        "of the web server (ProxyFix), when it comes from --forwarded-allow-ips; preferred "
        "to X-Forwarded-* when both are there",
    )
    forwarded_allow_ips: TrustedNetworks = setting(
        TrustedNetworks(DEFAULT_FORWARDED_ALLOW_IPS),
        networks(),
        "whose proxy headers --proxy-hops and --forwarded believe, by REMOTE_ADDR: IP "
        "addresses and networks (10.0.0.0/8, fd00::/8), or * for anyone; also read from "
        "FORWARDED_ALLOW_IPS, as gunicorn does; the default is a proxy on this host",
        env_aliases=(FORWARDED_ALLOW_IPS,),
    )
    reload: bool = setting(
        False,
        FLAG,
        "development: serve the app afresh, without failing a request, when a .py file "
        "under its directory changes (a pool of one worker unless --workers); a file that "
        "does not compile is reported once and the running app keeps serving",
    )
    reload_dir: tuple[str, ...] = setting(
        (),
        text_list("DIR"),
        "with --reload: watch DIR instead of the app's directory; repeat for several",
    )
    reload_engine: str = setting(
        "auto",
        choice(*ENGINES),
        "with --reload: how changes are noticed: watchfiles (pip install "
        "'fcgikit[reload]'), poll (modification times, once a second; for file systems "
        "that send no events), or auto: watchfiles when installed",
    )
    log_level: str = setting(
        "info",
        choice(*LOG_LEVELS),
        "the least severe of fcgikit's own log lines to write (its loggers, fcgikit.*); "
        "with --log-config only when given, over what the file says",
    )
    log_file: str | None = setting(
        None,
        text(metavar="FILE|-"),
        "write fcgikit's own log lines to FILE ('-': stderr); the app's logging is the app's",
        default_text="stderr",
    )
    log_config: str | None = setting(
        None,
        text(metavar="FILE"),
        "configure logging from FILE instead of fcgikit's defaults: a dictConfig "
        "dictionary in FILE.json or FILE.toml, else an ini file for fileConfig; it may "
        "configure any logger, and the access log goes where it sends fcgikit.access",
    )

    def __post_init__(self) -> None:
        check_fields(self)
