"""Worker options: what ``conveyor work`` flags set."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from .policy import WorkerDefaults

EXIT_OK = 0
EXIT_STUCK = 75  # EX_TEMPFAIL: a timed-out job could not be stopped; restart the worker


def default_worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"


@dataclass(slots=True)
class WorkerOptions:
    queues: list[str]
    weights: dict[str, int] | None = None
    concurrency: int = 1
    defaults: WorkerDefaults = field(default_factory=WorkerDefaults)
    sleep: float = 3.0
    memory_mb: int = 0  # 0: no limit
    max_time: float = 0.0  # 0: no limit
    max_jobs: int = 0  # 0: no limit
    stop_when_empty: bool = False
    once: bool = False
    name: str = field(default_factory=default_worker_name)
    grace: float = 30.0
    kill_grace: float = 2.0
    recover_on_start: bool = True
