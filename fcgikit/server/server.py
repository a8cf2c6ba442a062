"""The FastCGI server: listening sockets, one I/O loop, a pool of threads.

One loop (epoll, or poll) accepts connections and reads every connection; idle keep-conn
connections therefore cost a file descriptor and a few objects, not a thread. A connection
that brings one whole request and nothing more (nginx's default) skips even that: its
request runs on the direct lane (:mod:`fcgikit.server.direct`), as does the first request
of a keep-conn connection, which then becomes an ordinary one. The loop runs on
one of the :class:`~fcgikit.server.pool.WorkerPool`'s threads at a time, and a request whose
params and body are in runs on that same thread, with no hand-off, unless it turns out slow
(the pool's module docstring has the whole scheme). The thread that calls :meth:`Server.serve`
watches for that, and runs the signal handlers.

The parts: :mod:`~fcgikit.server.loop` (the loop's rounds, wake-ups and sweep),
:mod:`~fcgikit.server.poller` (readiness), :mod:`~fcgikit.server.accept` (taking
connections, and when not to), :mod:`~fcgikit.server.stopping` (stopping, and the reload's
hand-over), :mod:`~fcgikit.server.signals` (what each signal asks of a server that serves
from the main thread); this module holds what the connections ask of the server, and its
start and end.
"""

from __future__ import annotations

import gc
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

from fcgikit.protocol import Role
from fcgikit.protocol.whole_request import WholeRequest
from fcgikit.server import signals
from fcgikit.server.accept import Acceptor
from fcgikit.server.channel import RECV_SIZE, Channel
from fcgikit.server.channel_host import Refuses, text_names
from fcgikit.server.direct import DirectChannel
from fcgikit.server.listeners import open_bound_listeners, peer_label
from fcgikit.server.logs import configure_access_log
from fcgikit.server.loop import Loop, route_of
from fcgikit.server.loop import admit as admit  # where the tests and benchmarks take it from
from fcgikit.server.memory import tune_malloc
from fcgikit.server.notify import SystemdNotifier, server_status
from fcgikit.server.pool import WorkerPool
from fcgikit.server.reply import Connected, overload_log
from fcgikit.server.settings import ServerSettings
from fcgikit.server.stopping import Stopping, adopt_connections
from fcgikit.server.wsgi_codec import DROPPED_PARAMS, ENVIRON_EXTRA_KEYS, environ_names

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIApplication

    from fcgikit.server.health import Health
    from fcgikit.server.wsgi import WSGIRequest

log = logging.getLogger("fcgikit.server")


class Server:
    def __init__(
        self,
        app: WSGIApplication,
        settings: ServerSettings,
        listeners: Iterable[socket.socket] | None = None,
        *,
        created_paths: Iterable[str] = (),
        keep_listeners_on_reload: bool = False,
        connections: Iterable[int] = (),
        draining: Callable[[], bool] | None = None,
        notifier: SystemdNotifier | None = None,
    ) -> None:
        """``listeners``: sockets already listening (by default those of ``settings.binds``,
        which the server creates); ``created_paths``: the unix socket files among them that
        the server is to remove when it stops, as it does those it creates;
        ``keep_listeners_on_reload``: a SIGHUP leaves the listening sockets open and their
        files in place, and sets aside the connections idle between two requests
        (:attr:`parked`), for the caller to pass to its re-executed self;
        ``connections``: descriptors of connections such a previous self handed over;
        ``draining``: whether the ping path answers 503, when another decides it (a pool's
        master, see Scoreboard.draining), instead of this server's own stop; ``notifier``:
        what to tell systemd (see notify.py), for the server that is the service itself."""
        self.app = app
        self.settings = settings
        self.pool = WorkerPool(
            settings.threads, settings.max_queued, settings.max_queued_memory, route_of
        )
        self._handed_connections = list(connections)
        #: connections set aside, idle, for the re-executed process (see stopping.py)
        self.parked: list[Channel] = []
        #: where refusals that come in floods are logged (see Channel.refuse)
        self.overloads = overload_log()
        #: unix socket files this server created, removed again when it stops
        self.created_paths: list[str] = list(created_paths)
        if listeners is None:
            listeners, created = open_bound_listeners(settings)
            self.created_paths += created
        self.listeners = list(listeners)
        self._init_connections(settings)
        self.loop = Loop(self, notifier)
        self.acceptor = Acceptor(self, self.listeners, self.loop.poller)
        self.stopping = Stopping(self, keep_listeners_on_reload=keep_listeners_on_reload)
        #: signals the loop acts on (SIGUSR1, SIGTTIN, SIGTTOU), queued by their handler
        self.signals_queued: list[int] = []
        self._loop_started = False
        self.ready = threading.Event()
        #: the ping path's answerer (see health.py); None: nothing of it runs
        self.health: Health | None = None
        if settings.ping_path is not None:
            from fcgikit.server.health import Health  # here: only --ping-path needs it

            self.health = Health(
                settings.ping_path, settings.ping_response, draining or self.stopping.draining
            )
        self.notifier = notifier

    def _init_connections(self, settings: ServerSettings) -> None:
        """What the server knows of its connections: those the loop's thread added and no
        thread has removed yet, and what their requests need of it."""
        self.channels: set[Channel] = set()
        #: the connections whose request runs on the direct lane (see direct.py)
        self.direct: set[DirectChannel] = set()
        #: guards the connections (channels, and a connection's move from direct to
        #: channels), and the loop's write_wanted. A direct connection's own add and
        #: discard are one set operation each, atomic under the GIL: they take no lock.
        self.lock = threading.Lock()
        #: what every connection reads into, in the I/O thread (see Channel.on_readable)
        self.recv_buffer = memoryview(bytearray(RECV_SIZE))
        #: requests whose params arrived in this round of the loop, admitted after it
        self.arrived: list[tuple[Refuses, WSGIRequest]] = []
        #: whether a request can take the direct lane; WholeRequest.parse says which can
        self._direct_lane = Role.RESPONDER in settings.roles
        #: what direct_lane_takes reads for every connection, read once here (the settings'
        #: attributes are an interpreted dataclass's)
        self._max_params_size = settings.max_params_size
        #: a keep-conn request too, the connection kept after it (see direct.py): not when
        #: the web server may multiplex, for the lane reads nothing while its request runs
        self._direct_keeps = not settings.multiplexed
        #: whether a whole request's params are decoded as text (text_names says, by the
        #: settings): the table itself is asked for each request (a table kept for another set
        #: of dropped names is cleared: see environ_names_py)
        self._decodes_text = text_names(settings) is not None
        #: what a DirectChannel sends its reply with (see send_whole), read once
        self.send_timeout: float = settings.send_timeout
        #: connections kept after a direct request that ended off the loop's thread, for
        #: the loop to watch (see keep_direct); under the lock
        self.kept_elsewhere: list[Channel] = []
        #: what saturated() reads before every accept, once here (the settings' attributes
        #: are an interpreted dataclass's): the threads a server sharing its listeners
        #: fills, 0 when it shares none; the glance's bound, 0 when multiplexing defeats it
        self._fills_at = settings.threads if settings.share_listeners else 0
        self._glance_below = 0 if settings.multiplexed else settings.threads

    @property
    def keep_listeners_on_reload(self) -> bool:
        return self.stopping.keep_listeners_on_reload

    # --- called from any thread ------------------------------------------------------------

    def stop(
        self,
        reason: str = "stop requested",
        *,
        reload: bool = False,
        at_once: bool = False,
        drain: bool = False,
    ) -> None:
        """Ask the loop to stop: gracefully, or ``at_once`` (running requests are cut);
        ``reload``: ``serve`` returns True; ``drain``: go on serving for the settings'
        ``shutdown_delay`` first (SIGTERM), the ping path answering 503. A stop cancels a
        reload asked for before it, and a reload does not undo a stop; a graceful stop asked
        while a drain waits ends the wait. Safe from signal handlers and other threads."""
        delay = self.settings.shutdown_delay if drain else 0.0
        self.stopping.ask(reason, reload=reload, at_once=at_once, delay=delay)
        self.loop.wake()

    def want_write(self, channel: Channel) -> None:
        with self.lock:
            self.loop.write_wanted.add(channel)
        self.loop.wake()

    def wakeup_fd(self) -> int:
        """For ``signal.set_wakeup_fd``: a signal delivered while another thread runs must
        still wake the I/O thread, which is where Python runs signal handlers."""
        return self.loop.wake_w.fileno()

    def queue_signal(self, signum: int) -> None:
        """For a signal's handler: have the loop act on ``signum`` (signals.act_on)."""
        self.signals_queued.append(signum)
        self.loop.wake()

    def request_finished(self) -> None:
        if self.stopping.begun or self.acceptor.paused:
            self.loop.wake()

    def unregister(self, channel: Channel, *, closing: bool = False) -> None:
        """Forget ``channel`` in the poller. Called by the loop's thread only; ``closing``
        when its socket is closed, or about to be (see Poller.unregister). A registered channel
        is never closed (so its fd number is not reused) until it is unregistered."""
        if channel.registered:
            channel.registered = False
            self.loop.poller.unregister(channel.fileno, closing=closing)

    def set_aside(self, channel: Channel) -> None:
        """Out of the poller while an app's thread reads it (fcgikit.server.handover); the
        loop's thread only."""
        channel.selector_events = 0
        self.loop.poller.unregister(channel.fileno)

    def take_back(self, channel: Channel) -> None:
        """Watched again from the loop's next round, once an app's thread read it (see
        Loop.on_woken); from any thread."""
        with self.lock:
            self.kept_elsewhere.append(channel)
        self.loop.wake()

    def channel_closed(self, channel: Channel) -> None:
        """``channel`` has closed (Channel.close, on the loop's thread while it is
        registered): out of the poller and the connections, and a loop that waits for a
        connection to close (to accept again, or to stop) is woken."""
        self.unregister(channel, closing=True)
        self.forget(channel)
        if self.stopping.begun or self.acceptor.paused:
            self.loop.wake()

    def direct_closed(self, channel: DirectChannel) -> None:
        self.direct.discard(channel)  # (no lock: see _init_connections)
        if self.stopping.begun or self.acceptor.paused:
            self.loop.wake()

    def forget(self, channel: Channel) -> None:
        """Take ``channel`` out of the server's connections (closed, or handed over)."""
        with self.lock:
            self.channels.discard(channel)
            self.loop.write_wanted.discard(channel)

    def snapshot_channels(self) -> list[Channel]:
        with self.lock:
            return list(self.channels)

    def snapshot_connections(self) -> tuple[list[Channel], list[DirectChannel]]:
        with self.lock:
            return list(self.channels), list(self.direct)

    def connection_count(self) -> int:
        with self.lock:
            return len(self.channels) + len(self.direct) + len(self.acceptor.waiting)

    def saturated(self) -> bool:
        """A server that shares its listeners has as much work as threads: what it would
        accept now is better left to a sibling."""
        threads = self._fills_at
        if not threads:
            return False
        # Asked before every accept, so first a glance without the lock. A connection that
        # multiplexes nothing holds two requests at most (a next one may arrive between the
        # last one's reply going out and its end), so the connections bound the load. Only
        # the loop's thread (this one) adds connections; others only remove them, so the
        # glance can only be too high, and then the count decides.
        waiting = len(self.acceptor.waiting)
        if 2 * len(self.channels) + len(self.direct) + waiting < self._glance_below:
            return False
        return self._load() + waiting >= threads

    def _load(self) -> int:
        """Requests running or waiting here, plus the Channels that have not sent one yet
        (those accepted before their bytes came, Acceptor.waiting, are counted apart)."""
        with self.lock:
            channels = list(self.channels)
            running_direct = len(self.direct)
        return running_direct + sum(
            len(ch.requests) or int(not ch.requests_received) for ch in channels
        )

    # --- serving ---------------------------------------------------------------------------

    def _handles_signals(self) -> bool:
        """Python runs signal handlers on the main thread only; a server run elsewhere (the
        tests') leaves them to whoever runs there."""
        return (
            self.settings.handle_signals and threading.current_thread() is threading.main_thread()
        )

    def serve(self) -> bool:
        """Serve until stopped; True when stopped by SIGHUP (flup's "restart me")."""
        previous = signals.install(self) if self._handles_signals() else {}
        if self.settings.access_log is not None:
            configure_access_log(self.settings.access_log)
        try:
            self.acceptor.listen()
            self.loop.start()
            if self._handed_connections:
                adopt_connections(self, self._handed_connections)
            if threading.current_thread() is threading.main_thread():
                # Serving is what this process does from now on, and what is alive now (the
                # app, its framework, their modules) lives as long as it: keep it out of the
                # cyclic GC's full collections, which would walk it again and again (gunicorn
                # and Instagram do the same). Not for a server run on a side thread (tests).
                gc.freeze()
                # Likewise malloc's thresholds, for the large bodies (see memory.py).
                tune_malloc()
            self.ready.set()
            if self.notifier is not None:
                self.notifier.ready(server_status(self))
            # The loop runs on the pool's threads (see fcgikit.server.pool); this thread
            # watches it, and runs the signal handlers, as the main thread must.
            self._loop_started = True
            self.pool.start(self.loop.lead)
            self.pool.watch()
            if self.pool.loop_error is not None:
                raise self.pool.loop_error
        finally:
            signals.restore(previous)
            self._abandon_loop()
            self._close_everything()
        return self.stopping.reload

    def _abandon_loop(self) -> None:
        """``serve`` is leaving early (an exception here, KeyboardInterrupt): end the loop
        before its poller and sockets close under it."""
        if not self._loop_started:
            return
        self.stopping.stop_now = True
        self.loop.wake()
        if not self.pool.wait_loop_over(1.0):
            log.warning("fcgikit: the I/O loop did not stop within 1s")

    def _close_everything(self) -> None:
        self.acceptor.promote()  # closed with the Channels
        self.stopping.cut_connections()
        self.pool.shutdown()
        self.loop.close()
        self.stopping.leave_no_trace()

    # --- connections -----------------------------------------------------------------------

    def direct_lane_takes(
        self, conn: Connected, data: memoryview, peer: object, *, keep_conn: bool = True
    ) -> bool:
        """Whether ``data``, the first bytes read from the connection ``conn`` (from
        ``peer``), hold one whole ordinary request (WholeRequest.parse), which then runs on
        the direct lane: the one place the lane is chosen, whether the acceptor read them or
        a channel did. ``keep_conn``: one with FCGI_KEEP_CONN too (see direct.py)."""
        if not self._direct_lane:
            return False
        whole = WholeRequest.parse(
            data,
            self._max_params_size,
            keep_conn=keep_conn and self._direct_keeps,
            # its params decoded as the environ's text (text_names(self.settings), whose
            # reading of the interpreted settings is made once, in __init__)
            names=environ_names(DROPPED_PARAMS) if self._decodes_text else None,
            room=ENVIRON_EXTRA_KEYS,
        )
        if whole is None:
            return False
        direct = DirectChannel(self, conn, whole, peer)
        self.direct.add(direct)  # (no lock: see _init_connections)
        # admitted after this round, like the channels' requests
        self.arrived.append((direct, direct.start_request()))
        return True

    def keep_direct(self, direct: DirectChannel, *, on_loop: bool) -> bool:
        """The keep-conn request ``direct`` ran on the direct lane is answered: its connection
        becomes a Channel, watched from the loop's next round (woken for it when this is not
        the loop's thread), as if it had just been accepted; False when stopping (it closes,
        as a draining Channel would behind its request)."""
        if self.stopping.begun:
            return False
        peer = direct.peer
        channel = Channel(self, direct.sock, peer if type(peer) is str else peer_label(peer))
        channel.requests_received = 1
        with self.lock:
            self.direct.discard(direct)
            self.channels.add(channel)
            if not on_loop:
                self.kept_elsewhere.append(channel)
        if on_loop:
            self.loop.unwatched.append(channel)
        else:
            self.loop.wake()
        return True

    def start_channel(self, channel: Channel, *, watched: bool = False) -> None:
        """Serve an accepted connection. The poller learns of it only at the start of the
        next round: one whose request ran on this thread and closed it by then (a web server
        without keep-conn, sending its body in pieces) never costs the two epoll_ctl calls.
        ``watched``: it is in the poller already (Acceptor.on_first_bytes)."""
        with self.lock:
            self.channels.add(channel)
        if not watched:
            self.loop.unwatched.append(channel)

    def watch_channel(self, channel: Channel, events: int) -> None:
        """Serve ``channel`` from now on (a connection handed over by a previous process)."""
        channel.selector_events = events
        with self.lock:
            self.channels.add(channel)
        self.loop.poller.register(channel.fileno, events, channel)
