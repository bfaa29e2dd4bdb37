"""Enforce sync jobs' timeouts from outside their threads.

At the deadline the watchdog raises JobTimeout inside the job's thread (this stops
Python code, CPU-bound loops included). A thread stuck in C code (a long ``sleep``, a
blocking call without a timeout) cannot be interrupted: after ``kill_grace`` seconds the
watchdog reports it stuck and the worker records the timeout and exits, so the job is
never still running while another worker retries it.
"""

from __future__ import annotations

import ctypes
import heapq
import itertools
import threading
import time
from collections.abc import Callable

from ..errors import JobTimeout


def raise_in_thread(thread_id: int, exc_type: type[BaseException]) -> bool:
    """Ask CPython to raise ``exc_type`` in another thread at its next bytecode."""
    done: int = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(thread_id), ctypes.py_object(exc_type)
    )
    if done > 1:  # should never happen; undo rather than hit several threads
        ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread_id), None)
        return False
    return done == 1


_MAX_WAIT = 3600.0


class Watch:
    """One running attempt the watchdog keeps an eye on."""

    __slots__ = ("deadline", "finished", "inject", "key", "lock", "thread_id", "timed_out")

    def __init__(self, key: object, deadline: float, inject: bool) -> None:
        self.key = key
        self.deadline = deadline
        self.inject = inject
        self.thread_id: int | None = None
        self.finished = False
        self.timed_out = False
        self.lock = threading.Lock()

    def finish(self) -> None:
        with self.lock:
            self.finished = True


#: how many new watches between two sweeps of finished ones
COMPACT_EVERY = 1024


class Watchdog:
    def __init__(self, kill_grace: float, on_stuck: Callable[[object], None]) -> None:
        self.kill_grace = kill_grace
        self.on_stuck = on_stuck
        self._heap: list[tuple[float, int, Watch, bool]] = []
        self._counter = itertools.count()
        self._cond = threading.Condition()
        self._stopped = False
        self._pushes = 0
        self._thread = threading.Thread(target=self._run, name="conveyor-watchdog", daemon=True)
        self._thread.start()

    def watch(self, key: object, timeout: float, inject: bool) -> Watch:
        watch = Watch(key, time.monotonic() + timeout, inject)
        with self._cond:
            heapq.heappush(self._heap, (watch.deadline, next(self._counter), watch, False))
            if self._heap[0][2] is watch:  # only an earlier deadline changes the wait
                self._cond.notify()
            self._pushes += 1
            if self._pushes >= COMPACT_EVERY:
                self._compact()
        return watch

    def _compact(self) -> None:
        """Drop finished watches. They are otherwise popped only when their deadline comes,
        so a busy worker would hold (jobs per second x timeout) of them: 300,000 at 5,000
        jobs/s and a 60 s timeout. Every COMPACT_EVERY watches, O(n): cheap per job."""
        self._pushes = 0
        live = [entry for entry in self._heap if not entry[2].finished]
        if len(live) < len(self._heap):
            heapq.heapify(live)
            self._heap = live

    @property
    def size(self) -> int:
        """Watches held (finished ones included until compacted or due)."""
        with self._cond:
            return len(self._heap)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:  # a stuck job's exit runs here
            self._thread.join(timeout=2)

    def _run(self) -> None:
        while True:
            with self._cond:
                while self._heap and self._heap[0][2].finished:
                    heapq.heappop(self._heap)
                while not self._stopped and (
                    not self._heap or self._heap[0][0] > time.monotonic()
                ):
                    wait = self._heap[0][0] - time.monotonic() if self._heap else None
                    # bounded: a far deadline (a timeout of 1e300 s) must not overflow
                    self._cond.wait(None if wait is None else min(wait, _MAX_WAIT))
                if self._stopped:
                    return
                _, _, watch, second = heapq.heappop(self._heap)
            if watch.finished:
                continue
            if not second:
                with watch.lock:
                    if watch.finished:
                        continue
                    watch.timed_out = True
                    if watch.inject and watch.thread_id is not None:
                        raise_in_thread(watch.thread_id, JobTimeout)
                with self._cond:
                    heapq.heappush(self._heap, (time.monotonic() + self.kill_grace,
                                                next(self._counter), watch, True))
            else:
                self.on_stuck(watch.key)
