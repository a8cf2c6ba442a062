"""The ``fcgikit`` command. The only module that reads ``sys.argv``.

fcgikit serve yourapplication:app --bind unix:/run/app.sock
fcgikit serve yourapplication:create_app() --http 127.0.0.1:8000     (development front)
fcgikit config nginx --mount /yourapplication --socket unix:/run/app.sock
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, NoReturn, TypeAlias, cast

from fcgikit import __version__
from fcgikit.errors import ConfigError
from fcgikit.gc_pause import resume_collections
from fcgikit.serve_command import Fixers, listen, serve_one_process
from fcgikit.server.listeners import exec_with_listeners
from fcgikit.server.settings import (
    SERVE_SETTINGS,
    CommandSettings,
    PoolSettings,
    ServerSettings,
)
from fcgikit.server.settings.command import FORWARDED_ALLOW_IPS
from fcgikit.server.settings.command_line import add_options, read_ordinary
from fcgikit.server.settings.sources import CONFIG_VARIABLE, DEFAULT, ResolvedSettings, resolve

if TYPE_CHECKING:
    import argparse

    from fcgikit.server.server import Server

#: fcgikit's own logger of the command (logging is imported once the sockets listen)
LOG_NAME = "fcgikit.cli"

#: what each signal does to ``fcgikit serve``, one process or a pool: the end of its --help,
#: and word for word in the README and docs/operations.rst (tests/server/test_signals.py)
SIGNALS_HELP = (
    "Signals: SIGTERM stops gracefully (after serving on for --shutdown-delay seconds, if "
    "given, with --ping-path answering 503; running requests finish, for up to "
    "--graceful-timeout seconds); SIGINT and SIGQUIT stop at once (running requests are cut "
    "off); either way the unix socket fcgikit created is removed and the exit status is 0. "
    "SIGHUP reloads the app without failing a request: new workers replace the old ones "
    "with --workers, otherwise the process re-executes itself on the same listening socket. "
    "SIGUSR1 reopens the log files; SIGTTIN and SIGTTOU add or remove a worker (--workers)."
)

#: what ``fcgikit serve`` tells systemd: the end of its --help (fcgikit/server/notify.py)
NOTIFY_HELP = (
    "Under systemd (Type=notify, NOTIFY_SOCKET set; fcgikit config systemd writes such a "
    "unit) it says READY=1 once it serves, RELOADING=1 then READY=1 around a reload, "
    "STOPPING=1 when it stops, a STATUS= line of how busy it is, and WATCHDOG=1 when the "
    "unit sets WatchdogSec=."
)

#: how --help heads the options of each settings class
SERVE_GROUPS: dict[type, str] = {
    CommandSettings: "the app, and how it is run",
    ServerSettings: "the FastCGI server",
    PoolSettings: "the process pool (--workers)",
}


#: what each command adds its parser to
Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"

#: what argparse makes of the command line, or read_ordinary (the same for ``fcgikit serve``)
Arguments: TypeAlias = "argparse.Namespace | SimpleNamespace"

#: the options of ``fcgikit serve`` that are no setting (their attributes), with a value
#: and without one
SERVE_VALUE_OPTIONS = {"--config": "config"}
SERVE_SWITCHES = {"--print-config": "print_config"}


def _add_serve_parser(commands: Commands) -> None:
    """``fcgikit serve``: an option per setting (fcgikit/server/settings), and the file's."""
    serve = commands.add_parser(
        "serve",
        help="serve a WSGI app over FastCGI",
        description="Serve APP over FastCGI. With no --bind, serve the listening socket "
        "inherited on fd 0 (how mod_fcgid, lighttpd bin-path and spawn-fcgi start it). "
        "Each option can also be set in the environment, as FCGIKIT_THREADS=8, "
        "or in the [serve] table of a TOML file read with --config, as threads = 8; "
        "the command line wins over the environment, and the environment over the file.",
        epilog=f"{SIGNALS_HELP} {NOTIFY_HELP}",
    )
    for cls in SERVE_SETTINGS:
        add_options(serve.add_argument_group(SERVE_GROUPS[cls]), cls)
    [config] = SERVE_VALUE_OPTIONS
    serve.add_argument(
        config,
        metavar="FILE",
        help="read settings from the [serve] table of this TOML file "
        f"(default: ${CONFIG_VARIABLE}, else none)",
    )
    [print_config] = SERVE_SWITCHES
    serve.add_argument(
        print_config,
        action="store_true",
        help="print the settings as fcgikit serve would use them, each with where it "
        "came from (default, file, environment, command line), as a config file; and exit",
    )


def _add_check_parser(commands: Commands) -> None:
    from fcgikit.check.command import add_check_parser

    add_check_parser(commands)


def _add_request_parser(commands: Commands) -> None:
    from fcgikit.check.request import add_request_parser

    add_request_parser(commands)


def _add_status_parser(commands: Commands) -> None:
    from fcgikit.check.status import add_status_parser

    add_status_parser(commands)


def _add_config_parser(commands: Commands) -> None:
    from fcgikit.deploy.command import add_config_parser

    add_config_parser(commands)


#: each command's parser, in the order --help lists them
COMMANDS: dict[str, Callable[[Commands], None]] = {
    "serve": _add_serve_parser,
    "check": _add_check_parser,
    "request": _add_request_parser,
    "status": _add_status_parser,
    "config": _add_config_parser,
}


def _build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The command line's parser, for ``argv``: when it names a command, with that command's
    parser only. Every start of ``fcgikit serve``, and every SIGHUP's re-exec, builds it, and
    the other commands' options (and modules) are for those commands
    (tests/test_cli_startup.py); any other ``argv`` (``--help``, a misspelt command) gets
    them all."""
    import argparse  # here: the ordinary ``fcgikit serve`` command line needs no parser

    from fcgikit.protocol import ACCELERATED  # here: it loads the protocol's connection

    parser = argparse.ArgumentParser(
        prog="fcgikit", description="Serve WSGI apps over FastCGI behind a real web server."
    )
    build = "compiled" if ACCELERATED else "pure Python"  # see setup.py, FCGIKIT_PURE_PYTHON
    parser.add_argument("--version", action="version", version=f"fcgikit {__version__} ({build})")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    asked = argv[0] if argv else None
    for name, add_parser in COMMANDS.items():
        if asked not in COMMANDS or name == asked:
            add_parser(commands)
    return parser


def _fixers(settings: ResolvedSettings) -> Fixers | None:
    """The URL fixers --mount / --proxy-hops / --forwarded ask for, as a function of the
    loaded app."""
    command = settings.build(CommandSettings)
    trust_origin = settings.origin("forwarded_allow_ips")
    hops, forwarded = command.proxy_hops, command.forwarded
    proxy = None
    if hops or forwarded:
        proxy = {
            "x_for": hops,
            "x_proto": hops,
            "forwarded": forwarded,
            "trusted": command.forwarded_allow_ips,
        }
    elif trust_origin == f"env:{FORWARDED_ALLOW_IPS}":
        import logging

        logging.getLogger(LOG_NAME).warning(
            "fcgikit: FORWARDED_ALLOW_IPS is set, but no proxy header is trusted without "
            "--proxy-hops N or --forwarded N"
        )
    elif trust_origin != DEFAULT:
        raise ConfigError(
            "--forwarded-allow-ips says whose proxy headers to believe; add --proxy-hops N "
            "(X-Forwarded-For and -Proto) or --forwarded N (Forwarded) to say which"
        )
    if command.mount is None and proxy is None:
        return None
    # here: werkzeug (ProxyFix's header parsing) and the fixers are for those who ask for them
    from fcgikit.middleware import wrap

    return lambda app: wrap(app, mount=command.mount, proxy=proxy)


def _serve(args: Arguments) -> int:
    settings = resolve(SERVE_SETTINGS, args, os.environ)
    if args.print_config:
        sys.stdout.write(settings.as_toml())
        return 0
    command = settings.build(CommandSettings)
    if command.app is None:
        raise ConfigError(
            "which app? Name it: fcgikit serve yourapplication:app (or app = ... in the "
            "--config file's [serve] table, or FCGIKIT_APP)"
        )
    # A re-executed fcgikit (SIGHUP) starts where this one did, so that a relative --chdir,
    # --config or socket path means what it meant.
    start_directory = os.getcwd()
    if command.reload or settings.starts_pool():
        return _serve_pool(command, settings)
    if command.reload_dir or command.reload_engine != "auto":
        raise ConfigError("--reload-dir and --reload-engine go with --reload")
    if command.chdir:
        _enter_app_directory(command.chdir)  # first: a relative socket path is relative to it
    listening = listen(command, settings.build(ServerSettings))
    try:
        # --log-file's and --log-config's paths (and those the file names) are from where
        # fcgikit started, as when logging was set up before --chdir
        with _working_directory(start_directory):
            access_log_from_logging = _set_up_logging(command, settings)
        _enter_app_directory(None)  # the working directory on sys.path, as with --chdir
        fixers = _fixers(settings)
    except BaseException:
        listening.abandon()
        raise
    restart = serve_one_process(
        command, listening, fixers, access_log_from_logging=access_log_from_logging
    )
    if restart is not None:
        _reexecute(restart, start_directory)
    return 0


def _serve_pool(command: CommandSettings, settings: ResolvedSettings) -> int:
    """--workers or --reload: the pool's master (which binds), until it stops."""
    from fcgikit.serve_command import serve_pool, serve_reloading

    access_log_from_logging = _set_up_logging(command, settings)
    _enter_app_directory(command.chdir)
    fixers = _fixers(settings)
    server = settings.build(ServerSettings, access_log_from_logging=access_log_from_logging)
    # a pool: only one process loads the app (fcgikit/gc_pause.py) without collections
    resume_collections()
    if command.reload:
        return serve_reloading(command, settings, server, fixers)
    if command.reload_dir or command.reload_engine != "auto":
        raise ConfigError("--reload-dir and --reload-engine go with --reload")
    if command.http is not None:
        raise ConfigError("--http is a development front; use it without --workers")
    return serve_pool(command, settings, server, fixers)


@contextlib.contextmanager
def _working_directory(directory: str) -> Iterator[None]:
    """In ``directory`` for a while, then back where the process was."""
    here = os.getcwd()
    if here == directory:
        yield
        return
    os.chdir(directory)
    try:
        yield
    finally:
        os.chdir(here)


def _enter_app_directory(directory: str | None) -> None:
    from fcgikit.server.apploader import enter_app_directory  # it loads logging

    enter_app_directory(directory)


def _set_up_logging(command: CommandSettings, settings: ResolvedSettings) -> bool:
    """fcgikit's own logging (--log-level, --log-file), or the operator's --log-config
    instead; True when that file configures the access log (the fcgikit.access logger)."""
    import logging

    from fcgikit.server.logs import configure_logging, fcgikit_log

    level = getattr(logging, command.log_level.upper())
    if command.log_config is None:
        configure_logging(level, command.log_file)
        return False
    if command.log_file is not None:
        raise ConfigError(
            "--log-file and --log-config: say in the log config file where fcgikit's lines "
            "go (its fcgikit logger, or the root logger), and drop --log-file"
        )
    # here: logging.config and configparser are for those who bring a file for them
    from fcgikit.server.log_config import apply_log_config

    access_configured = apply_log_config(command.log_config)
    if access_configured and settings["access_log"] is not None:
        raise ConfigError(
            f"--access-log and {command.log_config}, which configures the fcgikit.access "
            "logger: the access log goes where the file sends it; drop --access-log"
        )
    if settings.origin("log_level") != DEFAULT:
        fcgikit_log.setLevel(level)
    return access_configured


def _reexecute(server: Server, start_directory: str) -> NoReturn:
    """SIGHUP without a pool: this process becomes a new fcgikit, on the same sockets."""
    import logging

    log = logging.getLogger(LOG_NAME)
    argv = [sys.executable, "-m", "fcgikit", *sys.argv[1:]]
    os.chdir(start_directory)
    if not server.keep_listeners_on_reload:
        log.info("fcgikit: SIGHUP; restarting")
        os.execv(argv[0], argv)
    log.info(
        "fcgikit: SIGHUP; restarting on the same listening socket(s), with %d idle connection(s)",
        len(server.parked),
    )
    # Until the new process handles SIGHUP itself, another one must not kill it: an
    # ignored signal stays ignored across exec.
    import signal

    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    connections = [channel.fileno for channel in server.parked]
    exec_with_listeners(argv, server.listeners, server.created_paths, connections)


def main(argv: Sequence[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    args = parse_arguments(argv)
    try:
        return _run(args)
    except BrokenPipeError:
        # `fcgikit config nginx | head`: the reader left; that is not an error worth a traceback
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0


def parse_arguments(argv: Sequence[str]) -> Arguments:
    """``argv`` as argparse reads it (which exits with its message for a wrong one); an
    ordinary ``fcgikit serve`` command line is read without building the parser, or even
    importing argparse (fcgikit/server/settings/command_line.py)."""
    args = read_ordinary(argv, SERVE_SETTINGS, values=SERVE_VALUE_OPTIONS, switches=SERVE_SWITCHES)
    return _build_parser(argv).parse_args(argv) if args is None else args


def _run(args: Arguments) -> int:
    try:
        if args.command == "serve":
            return _serve(args)
        resume_collections()  # only serving starts without them (fcgikit/gc_pause.py)
        # every other command's parser names the function that runs it (set_defaults)
        parsed = cast("argparse.Namespace", args)  # only serve is read without argparse
        run: Callable[[argparse.Namespace], int] = parsed.run
        return run(parsed)
    except ConfigError as exc:
        print(f"fcgikit: {exc}", file=sys.stderr)
        return 2
