"""Drain the store in-process with a burst-mode worker (for tests and scripts)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..worker.options import WorkerOptions
from ..worker.policy import WorkerDefaults
from ..worker.runner import Worker

if TYPE_CHECKING:
    from ..app import Conveyor


def run_until_empty(app: Conveyor, queues: list[str] | None = None, *, concurrency: int = 1,
                    **defaults: Any) -> Worker:
    """Run a ``--stop-when-empty`` worker in this thread; returns it for its counters."""
    from ..routing import DEFAULT_WORKER_QUEUES

    options = WorkerOptions(queues=list(queues or DEFAULT_WORKER_QUEUES),
                            concurrency=concurrency, defaults=WorkerDefaults(**defaults),
                            stop_when_empty=True, sleep=0.05)
    worker = Worker(app, options)
    worker.run()
    return worker
