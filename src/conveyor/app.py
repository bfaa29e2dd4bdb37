"""The ``Conveyor`` object: it owns the settings, the store, the job registry, the routing
rules and the event listeners. Nothing lives at module level."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, ParamSpec, TypeVar, overload

from .backends import Backend, open_backend
from .errors import ConfigurationError, UnknownJob
from .events import Events, Listener
from .jobs import JobDefinition, JobIds, PreparedJob
from .records import NewJob, WorkerInfo
from .routing import Router
from .settings import Settings, load_settings

if TYPE_CHECKING:
    from .batches import Batch, PendingBatch
    from .chains import PendingChain
    from .encryption import PayloadCipher
    from .testing.fake import DispatchRecorder

P = ParamSpec("P")
R = TypeVar("R")

#: a worker whose heartbeat is older than this many leases is considered gone
WORKER_DEAD_AFTER_LEASES = 2.0


class Conveyor:
    """A conveyor application.

    ``Conveyor()`` reads its store from the environment (``CONVEYOR_URL``,
    ``QUEUE_CONNECTION`` …) and defaults to ``sqlite:///conveyor.db``;
    ``Conveyor("postgresql://…")`` names it directly.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        clock: Callable[[], float] | None = None,
        directory: Path | None = None,
        **overrides: Any,
    ) -> None:
        if settings is None:
            settings = load_settings(directory, url=url, **overrides)
        elif url is not None or overrides:
            settings = settings.with_overrides(url=url, **overrides)
        self.settings = settings
        self.clock: Callable[[], float] = clock or time.time
        self.registry: dict[str, JobDefinition[Any, Any]] = {}
        self.router = Router.from_data(settings.routing)
        self.events = Events()
        self._backend: Backend | None = None
        self._backend_lock = threading.Lock()
        self._recorders: list[DispatchRecorder] = []
        self.new_job_id = JobIds()
        self._cipher: tuple[tuple[str, ...], PayloadCipher] | None = None
        #: state owned by installed extensions (``conveyor.builtin``: mail, push, reports …),
        #: keyed by the extension's name, so nothing lives at module level
        self.extensions: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<Conveyor {self.display_url} jobs={len(self.registry)}>"

    # -- the store ----------------------------------------------------------------------
    @property
    def is_sync(self) -> bool:
        """The ``sync`` connection runs jobs inline at dispatch, with no store."""
        return self.settings.url.startswith("sync")

    @property
    def display_url(self) -> str:
        from .backends import redact_url

        return redact_url(self.settings.url)

    @property
    def backend(self) -> Backend:
        if self.is_sync:
            raise ConfigurationError(
                "the sync connection has no store: set CONVEYOR_URL or QUEUE_CONNECTION to a "
                "real store for workers and the monitor"
            )
        if self._backend is None:
            with self._backend_lock:
                if self._backend is None:
                    self._backend = open_backend(
                        self.settings.url, table_prefix=self.settings.table_prefix
                    )
        return self._backend

    def close(self) -> None:
        with self._backend_lock:
            if self._backend is not None:
                self._backend.close()
                self._backend = None

    def __enter__(self) -> Conveyor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def payload_cipher(self, required: bool = False) -> PayloadCipher | None:
        """The cipher for encrypted jobs (``CONVEYOR_ENCRYPTION_KEYS``); None when no key
        is set, unless ``required`` (then a clear ConfigurationError)."""
        keys = self.settings.encryption_keys
        if not keys and not required:
            return None
        if self._cipher is None or self._cipher[0] != keys:  # built once per key list
            from .encryption import PayloadCipher

            self._cipher = (keys, PayloadCipher(keys))
        return self._cipher[1]

    # -- jobs -----------------------------------------------------------------------------
    @overload
    def job(self, func: Callable[P, R], /) -> JobDefinition[P, R]: ...

    @overload
    def job(
        self, func: None = None, /, **options: Any
    ) -> Callable[[Callable[P, R]], JobDefinition[P, R]]: ...

    def job(
        self, func: Callable[P, R] | None = None, /, **options: Any
    ) -> JobDefinition[P, R] | Callable[[Callable[P, R]], JobDefinition[P, R]]:
        """Register a job: ``@app.job`` or ``@app.job(queue="emails", tries=5, timeout=30)``.

        Options: ``name``, ``queue`` (a queue type), ``priority``, ``tries``, ``backoff``,
        ``timeout``, ``retry_until``, ``retry_on``, ``context`` (pass the JobContext first),
        ``encrypted`` (seal the arguments with ``CONVEYOR_ENCRYPTION_KEYS``).
        """

        def register(fn: Callable[P, R]) -> JobDefinition[P, R]:
            definition = JobDefinition(self, fn, **options)
            existing = self.registry.get(definition.name)
            if existing is not None and existing.func is not fn:
                raise ConfigurationError(
                    f"two jobs are named {definition.name!r}: give one of them name=…"
                )
            self.registry[definition.name] = definition
            return definition

        if func is not None:
            return register(func)
        return register

    def get_job(self, name: str) -> JobDefinition[Any, Any]:
        try:
            return self.registry[name]
        except KeyError:
            raise UnknownJob(
                f"no job named {name!r} is registered in this app "
                f"(known: {', '.join(sorted(self.registry)) or 'none'})"
            ) from None

    def route(self, job: str, *, type: str | None = None, queue: str | None = None,
              priority: str | None = None) -> None:
        """Add a routing rule: ``app.route("send_email", type="newsletter", priority="low")``."""
        self.router.add(job, type=type, queue=queue, priority=priority)

    def on(self, event: str, listener: Listener | None = None) -> Any:
        """Listen to an event: ``app.on("job_failed", fn)`` or as a decorator."""
        if listener is None:
            return lambda fn: self.events.on(event, fn)
        return self.events.on(event, listener)

    # -- dispatch ---------------------------------------------------------------------------
    def dispatch(self, prepared: PreparedJob) -> str:
        return self.dispatch_many([prepared], connection=prepared.options.connection)[0]

    def records_for(self, jobs: Iterable[PreparedJob]) -> list[NewJob]:
        now = self.clock()
        cap = self.settings.payload_max_bytes
        jobs = list(jobs)
        ids = self.new_job_id.many(len(jobs))
        return [job.to_record(now, cap, job_id) for job, job_id in zip(jobs, ids, strict=True)]

    def dispatch_many(self, jobs: Sequence[PreparedJob], *, connection: Any = None) -> list[str]:
        """Dispatch many jobs in one store transaction; returns their ids in order."""
        records = self.records_for(jobs)
        if self._recorders:
            for recorder in self._recorders:
                recorder.record(jobs, records)
            return [r.id for r in records]
        if self.is_sync:
            from .worker.inline import run_inline

            for record in records:
                run_inline(self, record)
            return [r.id for r in records]
        if connection is not None and not self.backend.capabilities.transactional_enqueue:
            raise ConfigurationError(
                f"the store {self.display_url} cannot enqueue inside a caller's transaction"
            )
        self.insert_records(records, connection=connection)
        return [r.id for r in records]

    def insert_records(self, records: Sequence[NewJob], *, connection: Any = None) -> None:
        if not records:
            return
        self.backend.jobs_insert(records, connection=connection)
        if self.events.has("job_dispatched"):
            for record in records:
                self.events.emit("job_dispatched", job_id=record.id, name=record.name,
                                 queue=record.queue)

    @property
    def recording(self) -> bool:
        """True inside ``app.fake()``: dispatches are recorded, not stored."""
        return bool(self._recorders)

    def record_dispatch(self, records: Sequence[NewJob]) -> None:
        for recorder in self._recorders:
            recorder.record_records(records)

    # -- batches and chains (docs/batches.md) ---------------------------------------------
    def batch(self, jobs: Sequence[PreparedJob | PendingChain], *,
              name: str = "") -> PendingBatch:
        """Many jobs as one unit: ``app.batch(jobs, name=…).then(job).dispatch()``."""
        from .batches import PendingBatch

        return PendingBatch(self, jobs, name)

    def chain(self, jobs: Sequence[PreparedJob | PendingBatch]) -> PendingChain:
        """Jobs run one after another: ``app.chain([a, b, c]).catch(job).dispatch()``."""
        from .chains import PendingChain

        return PendingChain(self, jobs)

    def find_batch(self, batch_id: str) -> Batch | None:
        from .batches import Batch

        record = self.backend.batch_get(batch_id)
        return None if record is None else Batch(self, record)

    @contextmanager
    def fake(self) -> Iterator[DispatchRecorder]:
        """Record dispatches instead of storing them (see ``conveyor.testing``)."""
        from .testing.fake import DispatchRecorder

        recorder = DispatchRecorder(self)
        self._recorders.append(recorder)
        try:
            yield recorder
        finally:
            self._recorders.remove(recorder)

    # -- operations ----------------------------------------------------------------------------
    def restart_workers(self) -> float:
        """Ask every worker to finish its current jobs and exit (``conveyor restart``)."""
        stamp = self.clock()
        self.backend.restart_signal_write(stamp)
        return stamp

    def live_workers(self) -> list[WorkerInfo]:
        """Workers whose heartbeat is recent; records of dead ones are removed."""
        now = self.clock()
        alive: list[WorkerInfo] = []
        for worker in self.backend.worker_list():
            lease = float(worker.info.get("lease", self.settings.worker_lease))
            if now - worker.last_heartbeat > lease * WORKER_DEAD_AFTER_LEASES:
                self.backend.worker_remove(worker.name)
            else:
                alive.append(worker)
        return alive

    def use_store(self, url: str) -> None:
        """Point this app at another store (``conveyor --connection URL``)."""
        self.close()
        self.settings = self.settings.with_overrides(url=url)
