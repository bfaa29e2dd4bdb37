"""Plain records that cross the store protocol: jobs, leases, failures, stats, workers.

A job is in one of these states (see docs/state-machine.md):

* ``scheduled`` - waiting, ``available_at`` in the future;
* ``available`` - waiting, ``available_at`` reached;
* ``running``   - reserved by a worker, holding a lease and a fencing token;
* ``failed``    - moved to the failed store;
* done jobs are deleted.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any


class JobState(enum.StrEnum):
    SCHEDULED = "scheduled"
    AVAILABLE = "available"
    RUNNING = "running"
    FAILED = "failed"


@dataclass(slots=True)
class NewJob:
    """A job about to be inserted. ``payload`` is the encoded JSON document."""

    id: str
    queue: str
    name: str
    payload: str
    available_at: float
    created_at: float
    max_tries: int | None = None
    batch_id: str | None = None


@dataclass(slots=True)
class ReservedJob:
    """A job handed to one worker; every transition out of running quotes ``token``."""

    id: str
    queue: str
    name: str
    payload: str
    attempts: int
    max_tries: int | None
    token: str
    available_at: float
    created_at: float
    reserved_at: float
    lease_expires_at: float
    batch_id: str | None = None

    @property
    def lease(self) -> Lease:
        return Lease(self.id, self.token)


@dataclass(frozen=True, slots=True)
class Lease:
    """The fencing pair: a job id and the token of one reservation of it."""

    id: str
    token: str


@dataclass(frozen=True, slots=True)
class Release:
    """Put a running job back to wait until ``available_at`` (its attempt stays counted)."""

    id: str
    token: str
    available_at: float


@dataclass(frozen=True, slots=True)
class Failure:
    """Move a running job to the failed store."""

    id: str
    token: str
    exception: str
    failed_at: float


@dataclass(slots=True)
class FailedRecord:
    """A row of the failed store (the seed's ``failed_jobs``)."""

    id: str
    connection: str
    queue: str
    name: str
    payload: str
    exception: str
    failed_at: float
    attempts: int

    @property
    def summary(self) -> str:
        """The last line of the exception text: ``ValueError: bad order``."""
        lines = [line for line in self.exception.strip().splitlines()
                 if line.strip() and not line.startswith("[conveyor]")]
        return lines[-1].strip() if lines else ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "connection": self.connection,
            "queue": self.queue,
            "name": self.name,
            "payload": self.payload,
            "exception": self.exception,
            "failed_at": self.failed_at,
            "attempts": self.attempts,
        }


@dataclass(slots=True)
class RecoveryResult:
    """What ``jobs_recover_expired`` did: ids put back to wait and ids failed as lost."""

    released: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass(slots=True)
class QueueStats:
    queue: str
    available: int = 0
    scheduled: int = 0
    running: int = 0
    failed: int = 0
    oldest_available_at: float | None = None
    paused: bool = False

    def oldest_age(self, now: float) -> float | None:
        if self.oldest_available_at is None:
            return None
        return max(0.0, now - self.oldest_available_at)

    def to_dict(self, now: float) -> dict[str, Any]:
        return {
            "queue": self.queue,
            "available": self.available,
            "scheduled": self.scheduled,
            "running": self.running,
            "failed": self.failed,
            "oldest_age": self.oldest_age(now),
            "paused": self.paused,
        }


@dataclass(slots=True)
class WorkerInfo:
    """A worker's record in the registry; ``info`` holds the extensible details."""

    name: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    started_at: float
    last_heartbeat: float
    state: str = "running"
    info: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "host": self.host,
            "pid": self.pid,
            "queues": list(self.queues),
            "concurrency": self.concurrency,
            "started_at": self.started_at,
            "last_heartbeat": self.last_heartbeat,
            "state": self.state,
            "info": dict(self.info),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WorkerInfo:
        return cls(
            name=str(data["name"]),
            host=str(data["host"]),
            pid=int(data["pid"]),
            queues=[str(q) for q in data["queues"]],
            concurrency=int(data["concurrency"]),
            started_at=float(data["started_at"]),
            last_heartbeat=float(data["last_heartbeat"]),
            state=str(data.get("state", "running")),
            info=dict(data.get("info") or {}),
        )


#: upper bounds (seconds) of the runtime histogram buckets; the last bucket is "above"
RUNTIME_BUCKETS: tuple[float, ...] = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
)


@dataclass(slots=True)
class MetricSample:
    """One worker's totals for one (minute, queue, job name).

    The worker owns its row and rewrites it whole on each flush, so stores upsert by
    (minute, queue, name, worker) without read-modify-write races. ``histogram`` has
    ``len(RUNTIME_BUCKETS) + 1`` counts.
    """

    minute: int  # epoch seconds at the start of the minute
    queue: str
    name: str
    worker: str
    processed: int = 0  # attempts that ended, whatever the outcome
    failed: int = 0  # final failures (moved to the failed store)
    released: int = 0  # attempts released for a retry
    timed_out: int = 0
    runtime_sum: float = 0.0
    runtime_max: float = 0.0
    wait_sum: float = 0.0  # from available_at to start
    wait_max: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * (len(RUNTIME_BUCKETS) + 1))

    def key(self) -> tuple[int, str, str, str]:
        return (self.minute, self.queue, self.name, self.worker)


class BatchOutcome(enum.StrEnum):
    """How one job of a batch ended (``cancelled``: skipped because the batch was)."""

    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class BatchMark:
    """One job's outcome to record in its batch (``batch_record``)."""

    batch_id: str
    job_id: str
    outcome: BatchOutcome


@dataclass(slots=True)
class NewBatch:
    """A batch about to be created; ``options`` is an encoded JSON document (callbacks,
    allow_failures …) that only the layer above the store reads."""

    id: str
    name: str
    options: str
    created_at: float


@dataclass(slots=True)
class BatchRecord:
    """A row of ``job_batches``.

    ``pending_jobs`` counts member jobs that have not succeeded (a failed job stays pending
    until a retry succeeds; a job skipped by cancellation is no longer pending);
    ``failed_jobs`` counts those whose latest outcome is a failure. So every job has run at
    least once when ``pending_jobs == failed_jobs``.
    """

    id: str
    name: str
    total_jobs: int
    pending_jobs: int
    failed_jobs: int
    failed_job_ids: list[str]
    options: str
    created_at: float
    cancelled_at: float | None = None
    finished_at: float | None = None

    @property
    def processed_jobs(self) -> int:
        return self.total_jobs - self.pending_jobs

    @property
    def progress(self) -> int:
        """Percent of jobs done (succeeded or skipped), 0-100, rounded down."""
        if self.total_jobs <= 0:
            return 100
        return (self.processed_jobs * 100) // self.total_jobs

    @property
    def all_ran(self) -> bool:
        """Every job has an outcome (succeeded, failed on its last try, or skipped)."""
        return self.pending_jobs <= self.failed_jobs

    @property
    def finished(self) -> bool:
        return self.finished_at is not None

    @property
    def cancelled(self) -> bool:
        return self.cancelled_at is not None

    @property
    def succeeded(self) -> bool:
        return self.pending_jobs == 0 and self.failed_jobs == 0 and self.cancelled_at is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id, "name": self.name, "total_jobs": self.total_jobs,
            "pending_jobs": self.pending_jobs, "failed_jobs": self.failed_jobs,
            "failed_job_ids": list(self.failed_job_ids), "progress": self.progress,
            "created_at": self.created_at, "cancelled_at": self.cancelled_at,
            "finished_at": self.finished_at, "finished": self.finished,
            "cancelled": self.cancelled,
        }
