"""The threads that run a worker's sync jobs.

A fixed set of daemon threads fed through one ``SimpleQueue``: a submit is one C-level
put, with no Future, lock or condition per job (a ThreadPoolExecutor allocates all
three, which cost a busy worker's main thread about a tenth of its time). The worker
never submits more jobs than it has free slots, so a thread is always there to take one.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Any

from .logs import LOGGER

_Task = tuple[Callable[..., None], tuple[Any, ...]] | None


class JobThreads:
    def __init__(self, size: int, name: str = "conveyor-job") -> None:
        self.size = size
        self.name = name
        self._tasks: queue.SimpleQueue[_Task] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._closed = False

    def submit(self, fn: Callable[..., None], *args: Any) -> None:
        """Run ``fn(*args)`` on one of the threads (started on first use). ``fn`` handles
        its own errors; one that escapes is logged and the thread takes the next task."""
        if self._closed:
            raise RuntimeError("job threads are shut down")
        if not self._threads:
            self._start()
        self._tasks.put((fn, args))

    def _start(self) -> None:
        for index in range(self.size):
            thread = threading.Thread(target=self._run, name=f"{self.name}_{index}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            fn, args = task
            try:
                fn(*args)
            except BaseException:  # keep the thread for the next job
                logging.getLogger(LOGGER).exception("unexpected error on a job thread")

    def shutdown(self) -> None:
        """Drop tasks not yet started and let every idle thread end; a thread still in a
        job ends after it (the threads are daemons: they never hold the process up)."""
        self._closed = True
        while True:
            try:
                self._tasks.get_nowait()
            except queue.Empty:
                break
        for _ in self._threads:
            self._tasks.put(None)

