"""A bounded pool of worker threads.

``submit`` never blocks the I/O thread: it says no when ``threads + max_queued`` requests are
already in flight, and the caller answers END_REQUEST OVERLOADED. Threads start as needed,
up to ``threads``, and live as long as the server.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

log = logging.getLogger("fcgikit.server")


class WorkerPool:
    def __init__(self, threads: int, max_queued: int) -> None:
        self.max_threads = threads
        self.capacity = threads + max_queued
        self._jobs: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self.in_flight = 0

    def submit(self, job: Callable[[], None]) -> bool:
        with self._lock:
            if self.in_flight >= self.capacity:
                return False
            self.in_flight += 1
            if self.in_flight > len(self._threads) and len(self._threads) < self.max_threads:
                thread = threading.Thread(
                    target=self._work, name=f"fcgikit-worker-{len(self._threads) + 1}", daemon=True
                )
                self._threads.append(thread)
                thread.start()
        self._jobs.put(job)
        return True

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            try:
                job()
            except BaseException:  # a job is a whole request; it logs its own failures
                log.exception("worker thread: unexpected error")
            finally:
                with self._lock:
                    self.in_flight -= 1

    def shutdown(self, timeout: float | None = None) -> None:
        """Stop idle threads; busy ones are daemons and end with the process."""
        with self._lock:
            threads = list(self._threads)
        for _ in threads:
            self._jobs.put(None)
        for thread in threads:
            thread.join(timeout)
