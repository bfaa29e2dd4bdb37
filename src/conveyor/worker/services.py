"""The worker's background services: heartbeat (lease renewal and the worker's record),
expired-lease recovery, the store waiter, and the process's memory gauge."""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
from typing import TYPE_CHECKING, Any

from ..errors import ConveyorError, StoreError
from ..records import Lease, WorkerInfo

if TYPE_CHECKING:
    from ..app import Conveyor
    from ..backends import Backend
    from .executor import Execution
    from .followups import Followups
    from .options import WorkerOptions

_WAKE = ("wake",)


class MemoryGauge:
    """Resident memory of this process: one ``pread`` of ``/proc/self/statm`` on Linux (read
    at most every 0.1 s, after a job, when ``--memory`` is set), getrusage's peak elsewhere."""

    def __init__(self) -> None:
        self._fd = -1
        self._pid = 0
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / (1024 * 1024) if hasattr(os, "sysconf") \
            else 0.0

    def mb(self) -> float:
        try:
            if self._fd < 0 or self._pid != os.getpid():
                self._fd = os.open("/proc/self/statm", os.O_RDONLY)
                self._pid = os.getpid()
            return int(os.pread(self._fd, 128, 0).split()[1]) * self._page_mb
        except (OSError, ValueError, IndexError):
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class WorkerServices:
    """Mixed into ``Worker``: the threads beside its main loop, and what they share."""

    app: Conveyor
    backend: Backend
    opts: WorkerOptions
    log: logging.Logger
    inbox: queue.SimpleQueue[tuple[Any, ...]]
    in_flight: dict[str, Execution]
    followups: Followups
    memory: MemoryGauge
    stopping: bool
    processed: int
    failed: int
    started_at: float
    _paused: set[str]
    _closing: threading.Event
    _beat_now: threading.Event
    _idle: threading.Event
    _heartbeat_lock: threading.Lock
    _unacked: dict[tuple[str, str], Lease]

    def _info(self) -> WorkerInfo:
        now = self.app.clock()
        current = [
            {"id": e.reserved.id, "name": e.reserved.name, "queue": e.reserved.queue,
             "attempt": e.reserved.attempts, "started": e.reserved.reserved_at,
             "progress": e.ctx.progress_value if e.ctx else None}
            for e in list(self.in_flight.values())
        ]
        state = "stopping" if self.stopping else "running"
        if not self.stopping and self._paused.issuperset(self.opts.queues):
            state = "paused"
        return WorkerInfo(
            name=self.opts.name, host=socket.gethostname(), pid=os.getpid(),
            queues=list(self.opts.queues), concurrency=self.opts.concurrency,
            started_at=self.started_at, last_heartbeat=now, state=state,
            info={"processed": self.processed, "failed": self.failed,
                  "memory_mb": round(self.memory.mb(), 1), "current": current,
                  "lease": self.opts.defaults.lease},
        )

    def _heartbeat_loop(self) -> None:
        lease = self.opts.defaults.lease
        interval = max(0.2, lease / 3)
        last_recovery = time.monotonic()
        while not self._closing.is_set():
            self._beat_now.wait(interval)
            self._beat_now.clear()
            try:
                self.heartbeat()
                if time.monotonic() - last_recovery >= lease:
                    last_recovery = time.monotonic()
                    self._recover()
            except ConveyorError as exc:
                self._store_trouble("heartbeat", exc)

    def heartbeat(self) -> None:
        """Renew the leases of running jobs and the worker's record."""
        with self._heartbeat_lock:
            if self._closing.is_set():
                return  # the record is being removed: do not write it back
            running = [e.reserved.lease for e in list(self.in_flight.values())]
            unacked = list(self._unacked.values())
            if running or unacked:
                held = set(self.backend.jobs_extend_lease(
                    running + unacked, self.opts.defaults.lease, self.app.clock()))
                # (no warning for a finished attempt not renewed: its ack may simply have
                # landed while the renewal travelled)
                for lease in running:
                    # a job that finished and was acked while the renewal travelled is not
                    # lost: only one still running under the same token is
                    current = self.in_flight.get(lease.id)
                    if lease.id not in held and current is not None \
                            and current.reserved.token == lease.token:
                        self.log.warning("lease of job %s was lost (it may run elsewhere)",
                                         lease.id)
            self._paused = self.backend.queues_paused()
            self.backend.worker_heartbeat(self._info())

    def _recover(self) -> None:
        try:
            result = self.backend.jobs_recover_expired(self.app.clock(),
                                                       self.opts.defaults.tries)
        except StoreError as exc:
            self._store_trouble("lease recovery", exc)
            return
        if result.failed:
            try:
                self.followups.lost(result.failed)
            except StoreError as exc:
                self._store_trouble("batch bookkeeping of lost jobs", exc)
        if result.released or result.failed:
            self.log.warning("recovered expired leases: %d released, %d failed (worker lost)",
                             len(result.released), len(result.failed))

    def _waiter_loop(self) -> None:
        queues = list(self.opts.queues)
        while not self._closing.is_set():
            if not self._idle.wait(0.5):
                continue
            try:
                if self.backend.wait_for_jobs(queues, 1.0):
                    self.inbox.put(_WAKE)
            except ConveyorError as exc:
                self._store_trouble("wait", exc)
                self._closing.wait(1.0)

    def _store_trouble(self, what: str, exc: BaseException) -> None:
        self.log.warning("store trouble during %s: %s", what, exc,
                         extra={"fields": {"event": "store_error", "during": what}})
