"""Regression (found by the chaos run on MySQL, where an ack waited on a stalled peer's
locks): a finished job whose ack is slow to reach the store keeps its lease, renewed by the
heartbeat, so no other worker runs it again while its worker is alive."""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from typing import Any

from conveyor import Conveyor
from conveyor.backends import Backend, open_backend
from conveyor.records import Lease
from conveyor.worker.options import WorkerOptions
from conveyor.worker.policy import WorkerDefaults
from conveyor.worker.runner import Worker

from ..integration.helpers import wait_until


class SlowAcks:
    """The real store, whose acks wait until the test opens ``gate`` (a store stalled by
    a lock, a reconnect, a failover)."""

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        self.gate = threading.Event()
        self.waiting = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.backend, name)

    def _hold(self, completes: Sequence[Lease]) -> None:
        if completes:
            self.waiting.set()
            self.gate.wait(30)

    def jobs_ack_and_reserve(self, completes: Sequence[Lease], *args: Any) -> Any:
        self._hold(completes)
        return self.backend.jobs_ack_and_reserve(completes, *args)

    def jobs_complete(self, leases: Sequence[Lease]) -> int:
        self._hold(leases)
        return self.backend.jobs_complete(leases)


def test_a_slow_ack_keeps_the_lease(sqlite_url: str) -> None:
    app = Conveyor(sqlite_url)
    runs: list[int] = []
    app.job(name="once")(lambda: runs.append(1))
    job_id = app.get_job("once").dispatch()
    slow = SlowAcks(app.backend)
    app._backend = slow  # type: ignore[assignment]
    worker = Worker(app, WorkerOptions(queues=["default"], stop_when_empty=True, sleep=0.05,
                                       defaults=WorkerDefaults(lease=1.0)))
    thread = threading.Thread(target=worker.run)
    thread.start()
    other = open_backend(sqlite_url)  # another worker's view of the store
    try:
        wait_until(slow.waiting.is_set, what="the ack to start")
        until = time.monotonic() + 3.0  # three leases
        while time.monotonic() < until:
            recovered = other.jobs_recover_expired(time.time(), 3)
            assert job_id not in recovered.released, "the job was taken from a live worker"
            time.sleep(0.1)
    finally:
        slow.gate.set()
        thread.join(30)
        other.close()
    assert runs == [1] and app.backend.jobs_get(job_id) is None
