"""Chains: ``app.chain([a, b, c]).catch(job).dispatch()`` runs each job after the previous
one succeeded; a failure stops the chain and runs its catch jobs.

The links still to run travel in the running job's payload meta (``meta["chain"]``). When a
link succeeds, the worker inserts the next one before acking, with an id derived from the
link that succeeded, through ``jobs_insert_once`` (or ``batch_add`` inside a batch, which
is idempotent by job id), so a link run again after its worker died never dispatches the
next link twice. A link may be a batch: it is dispatched with an internal ``then`` callback
that carries the rest of the chain, and the chain's catch jobs as extra ``catch`` callbacks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, StoreError
from .links import Link, derived_id, job_link, link_record
from .records import NewJob

if TYPE_CHECKING:
    from .app import Conveyor
    from .batches import PendingBatch
    from .jobs import PreparedJob

#: the internal job a batch link fires as its ``then`` callback to continue its chain
CONTINUE_JOB = "conveyor.chain_continue"


def _continue_chain() -> None:
    """Does nothing itself: its success moves the chain in its meta on (see advance)."""


def ensure_internal_jobs(app: Conveyor) -> None:
    if CONTINUE_JOB not in app.registry:
        app.job(name=CONTINUE_JOB, queue="default", priority="high")(_continue_chain)


class PendingChain:
    """A chain under construction; ``dispatch()`` inserts its first link."""

    def __init__(self, app: Conveyor, items: Sequence[PreparedJob | PendingBatch]) -> None:
        if not items:
            raise ConfigurationError("a chain needs at least one job")
        self.app = app
        self.items = list(items)
        self.catches: list[PreparedJob] = []
        self.queue: str | None = None
        ensure_internal_jobs(app)

    def catch(self, job: PreparedJob) -> PendingChain:
        """Runs once when a link fails (after its last try); the chain stops there."""
        self.catches.append(job)
        return self

    def on_queue(self, queue: str) -> PendingChain:
        from .routing import validate_queue

        self.queue = validate_queue(queue)
        return self

    def _encode(self, item: PreparedJob | PendingBatch) -> Link:
        from .batches import PendingBatch

        if isinstance(item, PendingBatch):
            if self.queue and item.queue is None:
                item.on_queue(self.queue)
            return {"batch": encode_batch(self.app, item)}
        if self.queue is not None:
            item = replace(item, options=replace(item.options, queue=self.queue))
        return job_link(self.app, item)

    def _meta(self, chain_id: str, rest: list[Link]) -> dict[str, Any]:
        return {"chain": {"id": chain_id, "rest": rest,
                          "catch": [job_link(self.app, j) for j in self.catches]}}

    def _links(self) -> list[Link]:
        return [self._encode(item) for item in self.items]

    def head_record(self, batch_id: str | None = None,
                    links: list[Link] | None = None) -> NewJob:
        """The first link as a job (inside a batch: a member of ``batch_id``)."""
        links = links if links is not None else self._links()
        if "batch" in links[0] or (batch_id and any("batch" in link for link in links)):
            raise ConfigurationError(
                "a chain inside a batch cannot contain batches; start the chain with a job")
        chain_id = self.app.new_job_id()
        return link_record(self.app, links[0], chain_id, self.app.clock(), batch_id=batch_id,
                           meta=self._meta(chain_id, links[1:]))

    def dispatch(self) -> str:
        """Insert the first link (or create the first batch); returns the chain id."""
        links = self._links()
        if "batch" in links[0]:
            chain_id = self.app.new_job_id()
            start_batch(self.app, links[0]["batch"], self._meta(chain_id, links[1:])["chain"],
                        chain_id)
            return chain_id
        record = self.head_record(links=links)
        if self.app.recording:
            self.app.record_dispatch([record])
        else:
            self.app.insert_records([record])
        return record.id


def encode_batch(app: Conveyor, pending: PendingBatch) -> dict[str, Any]:
    """A batch link as data: its jobs and options, created when the chain reaches it."""
    new, records = pending.prepare(app.new_job_id())
    return {"name": new.name, "options": new.options,
            "jobs": [{"name": r.name, "queue": r.queue, "payload": r.payload,
                      "max_tries": r.max_tries, "delay": r.available_at - r.created_at}
                     for r in records]}


def start_batch(app: Conveyor, spec: dict[str, Any], chain: dict[str, Any],
                batch_id: str) -> None:
    """Create a batch link, once: its ``then`` continues the chain, its ``catch`` includes
    the chain's catch jobs. ``batch_id`` is derived from the link before it."""
    from .batches import BatchOptions
    from .records import NewBatch

    if app.backend.batch_get(batch_id) is not None:
        return  # created by an earlier run of the link before
    options = BatchOptions.decode(spec["options"])
    continuation = {"name": CONTINUE_JOB, "queue": "default_high",
                    "payload": _continue_payload(app), "max_tries": None, "delay": 0.0}
    continuation["payload"] = link_record(app, continuation, batch_id, 0.0,
                                          meta={"chain": chain}).payload
    options.callbacks.setdefault("then", []).append(continuation)
    options.callbacks.setdefault("catch", []).extend(chain.get("catch") or [])
    now = app.clock()
    jobs = [link_record(app, link, derived_id(batch_id, "job", str(i)), now,
                       batch_id=batch_id)
            for i, link in enumerate(spec["jobs"])]
    try:
        created = app.backend.batch_create(NewBatch(batch_id, spec["name"], options.encode(),
                                                    now), jobs)
    except StoreError:
        if app.backend.batch_get(batch_id) is not None:
            return  # another worker created it at the same moment
        raise
    if created.total_jobs == 0:
        from .batches import fire_due

        fire_due(app, created)


def _continue_payload(app: Conveyor) -> str:
    ensure_internal_jobs(app)
    return app.registry[CONTINUE_JOB].prepare().to_record(
        0.0, app.settings.payload_max_bytes, "").payload


def advance(app: Conveyor, chain: dict[str, Any], job_id: str, batch_id: str | None) -> None:
    """The link ``job_id`` succeeded: dispatch the next one, once."""
    rest: list[Link] = list(chain.get("rest") or [])
    if not rest:
        return
    following, remaining = rest[0], rest[1:]
    meta = {"chain": {**chain, "rest": remaining}}
    next_id = derived_id(job_id, "next")
    if "batch" in following:
        start_batch(app, following["batch"], meta["chain"], next_id)
        return
    now = app.clock()
    record = link_record(app, following, next_id, now, batch_id=batch_id, meta=meta)
    if batch_id is not None:
        app.backend.batch_add(batch_id, [record])  # idempotent by job id, counted once
    else:
        app.backend.jobs_insert_once(f"chain:{job_id}:next", [record], now)


def fire_catch(app: Conveyor, chain: dict[str, Any]) -> None:
    """A link failed for good: run the chain's catch jobs, once per chain."""
    links: list[Link] = list(chain.get("catch") or [])
    if not links:
        return
    chain_id = str(chain.get("id"))
    now = app.clock()
    records = [link_record(app, link, derived_id(chain_id, "catch", str(i)), now)
               for i, link in enumerate(links)]
    app.backend.jobs_insert_once(f"chain:{chain_id}:catch", records, now)
