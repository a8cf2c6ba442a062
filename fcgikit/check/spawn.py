"""Start the app as a spawning web server does, and send it one request.

mod_fcgid and lighttpd's ``bin-path`` execute the ``.fcgi`` file as their own user, from ``/``,
with a listening socket on fd 0 and next to no environment. :class:`AppProcess` does the same
(``fcgikit check --user`` switches user, which needs root): a unix socket in a temporary
directory on the child's fd 0, ``PATH=/usr/bin:/bin`` and the variables given, cwd ``/``. The
child is :mod:`fcgikit.check.child`, which reports what it sees on a pipe as JSON events.
"""

from __future__ import annotations

import json
import os
from typing import TYPE_CHECKING, Any, NamedTuple

from fcgikit.check import child
from fcgikit.check.child import CHILD_FLAG

if TYPE_CHECKING:
    from collections.abc import Callable

    from fcgikit.client import FastCGIResponse

#: What a web server passes to the app it spawns (mod_fcgid: Apache's own env, usually just
#: PATH; lighttpd and h2o: their env; a CGI gets PATH plus the request variables).
MINIMAL_PATH = "/usr/bin:/bin"


class Account(NamedTuple):
    """Who the app runs as."""

    uid: int
    gid: int
    gids: list[int]
    name: str


def user_ids(user: str | None) -> Account:
    """The account of ``user`` (None: whoever runs fcgikit check)."""
    import pwd

    if user is None:
        uid = os.getuid()
        try:
            name = pwd.getpwuid(uid).pw_name
        except KeyError:
            name = str(uid)
        return Account(uid, os.getgid(), list(os.getgroups()), name)
    try:
        account = pwd.getpwnam(user)
    except KeyError:
        raise ValueError(f"no such user: {user}") from None
    if os.getuid() != 0 and account.pw_uid != os.getuid():
        raise ValueError(f"--user {user} needs root (check switches to that user to run the app)")
    gids = os.getgrouplist(account.pw_name, account.pw_gid)
    return Account(account.pw_uid, account.pw_gid, gids, account.pw_name)


def _child_source() -> str:
    with open(child.__file__, encoding="utf-8") as f:
        return f.read()


class AppProcess:
    """One child process with a listening socket on fd 0, and one request sent to it."""

    def __init__(
        self,
        command: list[str],
        config: dict[str, str],
        *,
        env: dict[str, str],
        account: Account,
        workdir: str,
    ) -> None:
        import socket
        import subprocess

        self.path = os.path.join(workdir, "check.sock")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(8)
        report_r, report_w = os.pipe()
        argv = [
            *command,
            "-c",
            _child_source(),
            CHILD_FLAG,
            json.dumps({**config, "report_fd": report_w}),
        ]
        self.stdout_path = os.path.join(workdir, "stdout")
        self.stderr_path = os.path.join(workdir, "stderr")
        switch = account.uid != os.getuid()
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            try:
                self.process = subprocess.Popen(
                    argv,
                    stdin=listener.fileno(),
                    stdout=out,
                    stderr=err,
                    env=env,
                    cwd="/",
                    pass_fds=(report_w,),
                    start_new_session=True,
                    user=account.uid if switch else None,
                    group=account.gid if switch else None,
                    extra_groups=account.gids if switch else None,
                )
            finally:
                listener.close()
                os.close(report_w)
        self.events: list[dict[str, Any]] = []
        import threading

        #: set when there is no point waiting longer: an answer, an exit, a bind of its own
        self.done = threading.Event()
        self._reader = threading.Thread(target=self._read_events, args=(report_r,), daemon=True)
        self._reader.start()

    def _read_events(self, fd: int) -> None:
        with os.fdopen(fd, "r", encoding="utf-8", errors="replace") as report:
            for line in report:
                try:
                    event = json.loads(line)
                except ValueError:
                    continue
                self.events.append(event)
                if event.get("event") == "bind":
                    self.done.set()  # it will not answer on the socket we gave it

    def request(
        self, send: Callable[[str], FastCGIResponse], timeout: float
    ) -> tuple[FastCGIResponse | None, BaseException | None, bool]:
        """Send the request; returns (response or None, error or None, timed out)."""
        import threading

        outcome: dict[str, Any] = {}
        done = self.done

        def do_request() -> None:
            try:
                outcome["response"] = send(f"unix:{self.path}")
            except BaseException as exc:
                outcome["error"] = exc
            finally:
                done.set()

        def watch() -> None:
            self.process.wait()
            done.set()

        requester = threading.Thread(target=do_request, daemon=True)
        requester.start()
        threading.Thread(target=watch, daemon=True).start()
        finished = done.wait(timeout)
        if self.process.poll() is not None:
            # The child is gone, so the connection is closed: the request ends at once.
            requester.join(10)
        error = outcome.get("error")
        # the client's own timeout (the same length) may fire first
        timed_out = not finished or isinstance(error, TimeoutError)
        return outcome.get("response"), error, timed_out

    def stop(self) -> None:
        import contextlib
        import signal
        import subprocess

        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        with contextlib.suppress(OSError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._reader.join(10)

    def output(self) -> tuple[str, str]:
        with open(self.stdout_path, "rb") as out, open(self.stderr_path, "rb") as err:
            return (
                out.read().decode("utf-8", "replace"),
                err.read().decode("utf-8", "replace"),
            )


def first_event(events: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    """The first event called ``name`` the child reported, if it reported one."""
    for event in events:
        if event.get("event") == name:
            return event
    return None
