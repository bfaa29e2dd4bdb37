"""Batches: many jobs as one unit, with callbacks, progress, cancellation and retry.

``app.batch([...], name=…).then(job).catch(job).finally_(job).dispatch()`` creates the
``job_batches`` row and inserts every job in one store call. Workers record each job's
outcome in its batch before acking it (``batch_record`` counts a job once), then insert
the callbacks that became due with ``jobs_insert_once`` under a key per batch and kind, so
each fires exactly once however many workers see the batch cross the line at the same
time, and whether or not the worker that crossed it dies. See docs/batches.md.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, NotFound
from .links import Link, derived_id, job_link, link_record
from .records import BatchRecord, NewBatch, NewJob

if TYPE_CHECKING:
    from .app import Conveyor
    from .chains import PendingChain
    from .jobs import PreparedJob

#: callback kinds in the order they are inserted when several become due together
CALLBACK_KINDS = ("then", "catch", "finally", "progress")


@dataclass(slots=True)
class BatchOptions:
    """What a batch keeps in its ``options`` column."""

    allow_failures: bool = False
    progress_every: int = 10
    callbacks: dict[str, list[Link]] = field(default_factory=dict)

    def encode(self) -> str:
        return json.dumps({"allow_failures": self.allow_failures,
                           "progress_every": self.progress_every,
                           "callbacks": self.callbacks}, separators=(",", ":"))

    @classmethod
    def decode(cls, text: str) -> BatchOptions:
        try:
            data = json.loads(text or "{}")
        except ValueError:
            data = {}
        return cls(bool(data.get("allow_failures", False)),
                   int(data.get("progress_every") or 10),
                   {k: list(v) for k, v in dict(data.get("callbacks") or {}).items()})


def due_callbacks(record: BatchRecord, options: BatchOptions) -> list[str]:
    """The callback keys the batch's state makes due (pure; firing is idempotent by key):
    ``catch`` once a job failed, ``then`` once all succeeded (never after a cancel),
    ``finally`` once every job ran, ``progress:N`` at each ``progress_every`` percent."""
    due: list[str] = []
    if record.succeeded:
        due.append("then")
    if record.failed_jobs > 0:
        due.append("catch")
    if record.all_ran:
        due.append("finally")
    every = max(1, options.progress_every)
    step = record.progress // every * every
    if options.callbacks.get("progress") and step > 0:
        due.append(f"progress:{step}")
    return due


def callback_records(app: Conveyor, record: BatchRecord, options: BatchOptions, key: str,
                     now: float) -> list[NewJob]:
    kind = key.split(":", 1)[0]
    return [link_record(app, link, derived_id(record.id, key, str(i)), now,
                        meta={"callback_of": record.id, "callback": kind})
            for i, link in enumerate(options.callbacks.get(kind, ()))]


def fire_due(app: Conveyor, record: BatchRecord, fired: set[str] | None = None) -> list[str]:
    """Insert the callbacks that are due and not yet known to be fired; returns the keys
    this call inserted. ``fired`` is the caller's cache of keys already dispatched."""
    fired = fired if fired is not None else set()
    options = BatchOptions.decode(record.options)
    inserted: list[str] = []
    now = app.clock()
    for key in due_callbacks(record, options):
        store_key = f"batch:{record.id}:{key}"
        if store_key in fired:
            continue
        records = callback_records(app, record, options, key, now)
        if records and app.backend.jobs_insert_once(store_key, records, now):
            inserted.append(key)
        fired.add(store_key)
    return inserted


class Batch:
    """A batch as stored: counters, progress, state; ``cancel()``, ``add()``, ``refresh()``."""

    def __init__(self, app: Conveyor, record: BatchRecord) -> None:
        self.app = app
        self.record = record

    def __repr__(self) -> str:
        r = self.record
        return (f"<Batch {r.id} {r.name!r} {r.progress}% total={r.total_jobs} "
                f"pending={r.pending_jobs} failed={r.failed_jobs}>")

    # as of the last read (``refresh()`` reads again)
    @property
    def id(self) -> str:
        return self.record.id

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def total_jobs(self) -> int:
        return self.record.total_jobs

    @property
    def pending_jobs(self) -> int:
        return self.record.pending_jobs

    @property
    def failed_jobs(self) -> int:
        return self.record.failed_jobs

    @property
    def processed_jobs(self) -> int:
        return self.record.processed_jobs

    @property
    def failed_job_ids(self) -> list[str]:
        return list(self.record.failed_job_ids)

    @property
    def progress(self) -> int:
        return self.record.progress

    @property
    def finished(self) -> bool:
        return self.record.finished

    @property
    def succeeded(self) -> bool:
        return self.record.succeeded

    @property
    def created_at(self) -> float:
        return self.record.created_at

    @property
    def finished_at(self) -> float | None:
        return self.record.finished_at

    @property
    def cancelled_at(self) -> float | None:
        return self.record.cancelled_at

    @property
    def cancelled(self) -> bool:
        """Read fresh from the store: a long job may poll it to stop early."""
        self.refresh()
        return self.record.cancelled

    @property
    def options(self) -> BatchOptions:
        return BatchOptions.decode(self.record.options)

    def refresh(self) -> Batch:
        record = self.app.backend.batch_get(self.record.id)
        if record is None:
            raise NotFound(f"batch {self.record.id} no longer exists (pruned?)")
        self.record = record
        return self

    def cancel(self) -> None:
        """Jobs of the batch that have not started are skipped (counted as cancelled)."""
        self.app.backend.batch_cancel(self.record.id, self.app.clock())
        self.refresh()

    def add(self, jobs: Sequence[PreparedJob | PendingChain]) -> list[str]:
        """Add jobs to this batch (from a job of the batch, or from outside while it runs)."""
        records = batch_records(self.app, self.record.id, jobs)
        self.app.backend.batch_add(self.record.id, records)
        self.refresh()
        return [r.id for r in records]

    def retry_failed(self) -> list[str]:
        """Put exactly the batch's failed jobs back; returns the ids retried."""
        self.refresh()
        if self.record.cancelled:
            raise ConfigurationError(
                f"batch {self.id} was cancelled, so its retried jobs would be skipped: "
                "dispatch a new batch instead")
        if not self.record.failed_job_ids:
            return []
        return self.app.backend.failed_retry(list(self.record.failed_job_ids), self.app.clock())

    def to_dict(self) -> dict[str, Any]:
        return self.record.to_dict()


def batch_records(app: Conveyor, batch_id: str,
                  items: Sequence[PreparedJob | PendingChain]) -> list[NewJob]:
    from .chains import PendingChain

    now = app.clock()
    cap = app.settings.payload_max_bytes
    records: list[NewJob] = []
    for item in items:
        if isinstance(item, PendingChain):
            records.append(item.head_record(batch_id=batch_id))
        else:
            records.append(replace(item, options=replace(item.options, batch_id=batch_id))
                           .to_record(now, cap, app.new_job_id()))
    return records


class PendingBatch:
    """``app.batch(jobs, name=…)``: configure, then ``dispatch()`` to get the batch id."""

    def __init__(self, app: Conveyor, jobs: Sequence[PreparedJob | PendingChain],
                 name: str = "") -> None:
        self.app = app
        self.jobs = list(jobs)
        self.name = name
        self.queue: str | None = None
        self.options = BatchOptions()
        self._callbacks: dict[str, list[PreparedJob]] = {k: [] for k in CALLBACK_KINDS}
        self.extra_links: dict[str, list[Link]] = {k: [] for k in CALLBACK_KINDS}

    def _add(self, kind: str, job: PreparedJob) -> PendingBatch:
        from .jobs import PreparedJob

        if not isinstance(job, PreparedJob):
            raise ConfigurationError(
                f"batch {kind} callback must be a prepared job, e.g. notify.prepare(42), "
                f"got {type(job).__name__}")
        self._callbacks[kind].append(job)
        return self

    def then(self, job: PreparedJob) -> PendingBatch:
        """Runs once every job of the batch succeeded."""
        return self._add("then", job)

    def catch(self, job: PreparedJob) -> PendingBatch:
        """Runs once, on the first job failure (after its last try)."""
        return self._add("catch", job)

    def finally_(self, job: PreparedJob) -> PendingBatch:
        """Runs once every job ran at least once, whatever the outcome."""
        return self._add("finally", job)

    def progress(self, job: PreparedJob, every: int = 10) -> PendingBatch:
        """Runs each time the batch passes another ``every`` percent (best effort)."""
        if not isinstance(every, int) or not 1 <= every <= 100:
            raise ConfigurationError(f"progress every= must be 1..100 percent, got {every!r}")
        self.options.progress_every = every
        return self._add("progress", job)

    def allow_failures(self, allow: bool = True) -> PendingBatch:
        """Keep running the other jobs after a failure (default: cancel the batch)."""
        self.options.allow_failures = allow
        return self

    def on_queue(self, queue: str) -> PendingBatch:
        """Send every job of the batch and its callbacks to this queue type."""
        from .routing import validate_queue

        self.queue = validate_queue(queue)
        return self

    def _queued(self, job: PreparedJob) -> PreparedJob:
        if self.queue is None:
            return job
        return replace(job, options=replace(job.options, queue=self.queue))

    def prepare(self, batch_id: str) -> tuple[NewBatch, list[NewJob]]:
        from .chains import PendingChain

        items: list[PreparedJob | PendingChain] = [
            item.on_queue(self.queue) if isinstance(item, PendingChain) and self.queue
            else item if isinstance(item, PendingChain) else self._queued(item)
            for item in self.jobs]
        options = BatchOptions(self.options.allow_failures, self.options.progress_every, {
            kind: [job_link(self.app, self._queued(j)) for j in jobs] + self.extra_links[kind]
            for kind, jobs in self._callbacks.items() if jobs or self.extra_links[kind]})
        records = batch_records(self.app, batch_id, items)
        return NewBatch(batch_id, self.name, options.encode(), self.app.clock()), records

    def dispatch(self, batch_id: str | None = None) -> str:
        """Create the batch and insert its jobs in one store call; returns the batch id."""
        app = self.app
        batch_id = batch_id or app.new_job_id()
        new, records = self.prepare(batch_id)
        if app.recording:
            app.record_dispatch(records)
            return batch_id
        if app.is_sync:
            raise ConfigurationError(
                "batches need a store (the sync connection runs jobs inline): set CONVEYOR_URL")
        created = app.backend.batch_create(new, records)
        if created.total_jobs == 0:
            fire_due(app, created)  # an empty batch is done at once
        return batch_id
