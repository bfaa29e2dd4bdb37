"""The store protocol. Storage primitives only; all policy lives above it.

Every method takes ``now`` (epoch seconds) from the caller's clock where time matters,
so the conformance suite can drive time and every store agrees on it. Methods work on
many jobs at once where that makes sense. Transitions out of ``running`` are
conditional on the fencing token: a stale lease changes nothing and is not counted.
"""

from __future__ import annotations

import abc
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigurationError
from ..records import (
    BatchMark,
    BatchRecord,
    FailedRecord,
    Failure,
    Lease,
    MetricSample,
    NewBatch,
    NewJob,
    QueueStats,
    RecoveryResult,
    Release,
    ReservedJob,
    WorkerInfo,
)


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a store can do; callers ask these instead of testing a store's type."""

    transactional_enqueue: bool = False  # jobs_insert(..., connection=caller_conn)
    native_notify: bool = False  # wait_for_jobs is woken by the store, not by polling
    shared_across_hosts: bool = True  # workers on several machines may share it
    persistent: bool = True
    batches: bool = False  # the batch_* methods and jobs_insert_once are implemented


class Backend(abc.ABC):
    """One store. Implementations are thread-safe: a worker calls them from several threads."""

    #: scheme names this backend serves, e.g. ("sqlite",)
    schemes: tuple[str, ...] = ()
    capabilities: Capabilities = Capabilities()

    def __init__(self, url: str, *, table_prefix: str = "") -> None:
        self.url = url
        self.table_prefix = table_prefix

    @functools.cached_property
    def display_url(self) -> str:
        """The URL with any password removed: safe for logs, the monitor and failed rows."""
        return redact_url(self.url)

    # -- lifecycle ----------------------------------------------------------------
    @abc.abstractmethod
    def migrate(self) -> list[str]:
        """Create or upgrade the store's schema; returns the migrations applied."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release connections. The backend must not be used afterwards."""

    def ping(self) -> None:  # noqa: B027 - optional override
        """Raise StoreUnavailable when the store cannot be reached."""

    # -- jobs ---------------------------------------------------------------------
    @abc.abstractmethod
    def jobs_insert(self, records: Sequence[NewJob], *, connection: Any = None) -> None:
        """Insert jobs atomically (all or none). ``connection``: the caller's open
        transaction, for stores with ``transactional_enqueue``."""

    @abc.abstractmethod
    def jobs_reserve(
        self, queues: Sequence[str], limit: int, lease: float, worker: str, now: float
    ) -> list[ReservedJob]:
        """Reserve up to ``limit`` available jobs, taking queues in the given strict order
        (skipping paused ones), oldest ``available_at`` first within a queue. Each reserved
        job gets ``attempts + 1``, a fresh token and ``lease_expires_at = now + lease``."""

    def jobs_ack_and_reserve(
        self,
        completes: Sequence[Lease],
        releases: Sequence[Release],
        failures: Sequence[Failure],
        queues: Sequence[str],
        limit: int,
        lease: float,
        worker: str,
        now: float,
    ) -> list[ReservedJob]:
        """Write finished attempts, then reserve up to ``limit``: the worker's one round
        trip per loop. Stores override it to share a transaction or a pipeline; the acks
        are idempotent under their tokens, so a caller may safely repeat them."""
        if completes:
            self.jobs_complete(completes)
        if releases:
            self.jobs_release(releases)
        if failures:
            self.jobs_fail(failures)
        return self.jobs_reserve(queues, limit, lease, worker, now) if limit > 0 else []

    @abc.abstractmethod
    def jobs_complete(self, leases: Sequence[Lease]) -> int:
        """Delete finished jobs whose token still matches; returns how many."""

    @abc.abstractmethod
    def jobs_release(self, items: Sequence[Release]) -> int:
        """Put running jobs back to wait until ``available_at``; token-checked."""

    @abc.abstractmethod
    def jobs_fail(self, items: Sequence[Failure]) -> int:
        """Move running jobs to the failed store; token-checked."""

    @abc.abstractmethod
    def jobs_extend_lease(self, leases: Sequence[Lease], lease: float, now: float) -> list[str]:
        """Renew leases still held; returns the ids whose token still matched."""

    @abc.abstractmethod
    def jobs_recover_expired(
        self, now: float, default_tries: int, limit: int = 1000
    ) -> RecoveryResult:
        """Jobs whose lease expired: back to available (attempt stays counted), or to the
        failed store with reason "worker lost" once ``attempts >= max_tries``."""

    @abc.abstractmethod
    def jobs_get(self, job_id: str) -> ReservedJob | None:
        """One waiting or running job by id (``token`` empty while not running)."""

    # -- failed store -------------------------------------------------------------
    @abc.abstractmethod
    def failed_list(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[FailedRecord]:
        """Failed jobs, newest first."""

    @abc.abstractmethod
    def failed_get(self, job_id: str) -> FailedRecord | None: ...

    @abc.abstractmethod
    def failed_retry(
        self, ids: Iterable[str] | None, now: float, queue: str | None = None
    ) -> list[str]:
        """Put failed jobs back as new (attempts 0), removing their failed rows atomically.
        ``ids=None`` means all (of ``queue`` when given). Returns the ids retried."""

    @abc.abstractmethod
    def failed_forget(self, job_id: str) -> bool: ...

    @abc.abstractmethod
    def failed_flush(self, older_than: float | None = None) -> int:
        """Delete failed rows (those failed before ``older_than`` when given)."""

    # -- control --------------------------------------------------------------------
    @abc.abstractmethod
    def queue_pause(self, queue: str) -> None: ...

    @abc.abstractmethod
    def queue_resume(self, queue: str) -> None: ...

    @abc.abstractmethod
    def queues_paused(self) -> set[str]: ...

    @abc.abstractmethod
    def queue_clear(self, queues: Sequence[str]) -> int:
        """Delete waiting (not running) jobs of these queues; returns how many."""

    @abc.abstractmethod
    def restart_signal_write(self, stamp: float) -> None: ...

    @abc.abstractmethod
    def restart_signal_read(self) -> float | None: ...

    @abc.abstractmethod
    def worker_register(self, worker: WorkerInfo) -> None: ...

    @abc.abstractmethod
    def worker_heartbeat(self, worker: WorkerInfo) -> None:
        """Upsert the worker's record with its latest state."""

    @abc.abstractmethod
    def worker_list(self) -> list[WorkerInfo]: ...

    @abc.abstractmethod
    def worker_remove(self, name: str) -> None: ...

    # -- monitoring -------------------------------------------------------------------
    @abc.abstractmethod
    def queue_stats(self, now: float) -> list[QueueStats]:
        """Per queue known to the store: available, scheduled, running, failed, oldest."""

    @abc.abstractmethod
    def metrics_record(self, samples: Sequence[MetricSample]) -> None:
        """Upsert samples by (minute, queue, name, worker), replacing the whole row."""

    @abc.abstractmethod
    def metrics_read(self, since: float, until: float | None = None) -> list[MetricSample]:
        """Samples whose minute is in [since, until), every worker's row as stored."""

    @abc.abstractmethod
    def metrics_prune(self, older_than: float) -> int:
        """Delete samples of minutes before ``older_than``; returns how many."""

    def store_risks(self) -> list[str]:
        """Optional: settings of the store that put jobs at risk, one sentence each, saying
        how to fix it (e.g. Redis ``maxmemory-policy`` that evicts keys, persistence off).
        ``conveyor health`` reports each as a problem; callers look it up with ``getattr``
        so a store may leave it out. Raise StoreError when the store cannot be asked."""
        return []
    # -- batches (see docs/batches.md) ------------------------------------------------------
    # Not abstract: a store without them says so through ``capabilities.batches`` and a
    # clear error, and keeps working for everything else.
    def _no_batches(self) -> ConfigurationError:
        return ConfigurationError(
            f"the store {self.display_url} does not support batches and chains yet: use "
            "SQLite, PostgreSQL, Redis or MySQL with a conveyor version that does")

    def batch_create(self, batch: NewBatch, jobs: Sequence[NewJob]) -> BatchRecord:
        """Insert the ``job_batches`` row (total = pending = len(jobs)), one member row per
        job and the jobs themselves, all or nothing (one round trip per chunk of jobs)."""
        raise self._no_batches()

    def batch_add(self, batch_id: str, jobs: Sequence[NewJob]) -> int:
        """Add jobs to an existing batch: members, counters and jobs together. Idempotent by
        job id: a job id already a member of the batch is neither counted nor inserted again.
        Returns how many were added; raises NotFound when the batch does not exist."""
        raise self._no_batches()

    def batch_get(self, batch_id: str) -> BatchRecord | None:
        raise self._no_batches()

    def batch_list(self, limit: int = 50, offset: int = 0) -> list[BatchRecord]:
        """Batches, newest first."""
        raise self._no_batches()

    def batch_cancel(self, batch_id: str, now: float) -> bool:
        """Set ``cancelled_at`` (once); False when the batch does not exist."""
        raise self._no_batches()

    def batch_record(self, marks: Sequence[BatchMark], now: float) -> dict[str, BatchRecord]:
        """Record job outcomes, each counted once per job: a member with no outcome takes any;
        a failed one may become succeeded or cancelled (a retry); anything else is a no-op, so
        a job run again after its worker died never counts twice. Counters change
        atomically; ``finished_at`` is set when every member has an outcome. Returns the
        state of each batch named, read after the change (marks of unknown batches or of
        non-members change nothing)."""
        raise self._no_batches()

    def batch_prune(self, older_than: float) -> int:
        """Delete batches finished before ``older_than`` (with their members) and
        ``jobs_insert_once`` keys created before it; returns the batches deleted."""
        raise self._no_batches()

    def jobs_insert_once(self, key: str, records: Sequence[NewJob], now: float) -> bool:
        """Insert ``records`` only if ``key`` was never used (until pruned), atomically with
        remembering it. True when inserted. What makes batch callbacks and chain links fire
        exactly once, even after the jobs they inserted ran and were deleted."""
        raise self._no_batches()

    # -- waiting ----------------------------------------------------------------------
    @abc.abstractmethod
    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> bool:
        """Block up to ``timeout`` seconds until jobs may be available; True when woken.
        Only a latency hint: callers always reserve to find out."""

    def wait_and_reserve(
        self, queues: Sequence[str], timeout: float, limit: int, lease: float, worker: str,
        now: float,
    ) -> tuple[bool, list[ReservedJob]]:
        """``wait_for_jobs``, then (for a store that can do it in the same round trip as
        the wake-up) the reserve that follows it: (woken, the jobs reserved, at most
        ``limit``). The default reserves nothing; a caller woken with no jobs reserves
        itself, with ``jobs_reserve``. ``now`` is the caller's clock at the call: a store
        that reserves when the wait ends treats no job as due later than ``now +
        timeout`` by it."""
        return self.wait_for_jobs(queues, timeout), []


_HOST = re.compile(r"^[\w.\-\[\]:%]*$")


def redact_url(url: str) -> str:
    """``postgresql://u:secret@h/db`` -> ``postgresql://u:***@h/db``; a query carrying a
    password is dropped. The credentials end at the last ``@`` followed by a host, so a
    password holding ``/``, ``?`` or ``@`` (which a URL should percent-encode, but people
    don't) is still hidden when a broken URL is shown in an error."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    at = len(rest)
    while (at := rest.rfind("@", 0, at)) >= 0:
        location = re.split(r"[/?]", rest[at + 1:], maxsplit=1)[0]
        if _HOST.match(location):
            user, colon, _password = rest[:at].partition(":")
            rest = f"{user}:***@{rest[at + 1:]}" if colon else rest
            break
    head, question, query = rest.partition("?")
    if "password" in query.lower():
        question, query = "", ""
    return f"{scheme}://{head}{question}{query}"
