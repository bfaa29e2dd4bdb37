"""Redis batch bookkeeping (docs/batches.md): a hash per batch, a hash of its members'
outcomes, and sorted sets to list batches, prune finished ones and remember the keys of
``jobs_insert_once``. Each transition is one Lua script, so counters change atomically;
Redis runs scripts one at a time, so no lock is involved.

Batch keys share the store-wide hash tag ``{#}`` while jobs live in their queues' slots:
batches need one Redis server (not Cluster / ``single_slot``). Creating a batch larger than
the insert chunk takes one script call per chunk, pipelined: each chunk is atomic, the
batch's counts are written with the first, so it cannot finish early, but a dispatcher
killed between chunks leaves a batch that never finishes (cancel it).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

from redis.commands.core import Script

from ...errors import ConfigurationError, NotFound, StoreError
from ...records import BatchMark, BatchRecord, NewBatch, NewJob

if TYPE_CHECKING:
    from collections.abc import Iterator

    import redis

    from .connection import RedisErrors
    from .keys import Keys, RedisOptions


def _source(*names: str) -> str:
    folder = resources.files(__package__ or "conveyor.backends.redis")
    return "\n".join((folder / name).read_text() for name in names)


def _text(value: Any) -> str | None:
    return None if value in (None, "") else str(value)


def _record(batch_id: str, fields: dict[str, str]) -> BatchRecord:
    cancelled, finished = _text(fields.get("cancelled_at")), _text(fields.get("finished_at"))
    return BatchRecord(
        id=batch_id, name=fields.get("name", ""), total_jobs=int(fields.get("total", 0)),
        pending_jobs=int(fields.get("pending", 0)), failed_jobs=int(fields.get("failed", 0)),
        failed_job_ids=list(json.loads(fields.get("failed_ids") or "[]")),
        options=fields.get("options") or "{}", created_at=float(fields.get("created_at", 0)),
        cancelled_at=float(cancelled) if cancelled else None,
        finished_at=float(finished) if finished else None)


class RedisBatches:
    """Mixed into RedisBackend; uses its client, keys, scripts and insert arguments."""

    if TYPE_CHECKING:
        client: redis.Redis
        keys: Keys
        options: RedisOptions
        per_queue_calls: bool

        def _errors(self, what: str) -> RedisErrors: ...
        def _chunks(self, records: Sequence[NewJob]) -> Iterator[Sequence[NewJob]]: ...
        def _insert_calls(self, chunk: Sequence[NewJob]
                          ) -> list[tuple[str, Sequence[str], tuple[Any, ...]]]: ...

    def _batch_scripts(self) -> dict[str, Script]:
        scripts: dict[str, Script] | None = getattr(self, "_batch_script_cache", None)
        if scripts is None:
            scripts = {
                # insert.lua's body behind a prelude that checks and writes the batch part
                "insert": self.client.register_script(
                    _source("_lib.lua", "batch_prelude.lua", "insert.lua")),
                "record": self.client.register_script(_source("batch_record.lua")),
                "admin": self.client.register_script(_source("batch_admin.lua")),
            }
            self._batch_script_cache = scripts
        return scripts

    def _bkey(self, batch_id: str, suffix: str = "") -> str:
        return f"{self.keys.prefix}:{{#}}:batch:{batch_id}{suffix}"

    def _need_one_server(self) -> None:
        if self.per_queue_calls:
            raise ConfigurationError(
                "batches on Redis need one server: they are not available with single_slot "
                "(Redis Cluster); use a single Redis server or a SQL store for batches")

    def _insert(self, what: str, records: Sequence[NewJob], mode: str,
                extra: Sequence[Any], pipe: Any = None) -> Any:
        """One insert script call for ``records`` (one chunk), with the batch prelude."""
        calls = self._insert_calls(records) if records else [("insert", [], ("", 16, "1"))]
        ((_, queues, args),) = calls  # one server: one call covers every queue
        keys = [self.keys.queue(q, "wait") for q in queues] or [self.keys.workers]
        argv = (self.keys.prefix, len(queues), *queues, *args, *extra, len(extra), mode)
        return self._batch_scripts()["insert"](keys=keys, args=argv, client=pipe)

    def batch_create(self, batch: NewBatch, jobs: Sequence[NewJob]) -> BatchRecord:
        self._need_one_server()
        head = (batch.id, batch.name, batch.options, repr(batch.created_at), len(jobs))
        chunks = list(self._chunks(jobs)) or [[]]
        with self._errors("batch create"):
            if len(chunks) == 1:
                self._insert("batch create", chunks[0], "create", (*head, "1"))
            else:
                pipe = self.client.pipeline(transaction=False)
                for i, chunk in enumerate(chunks):
                    self._insert("batch create", chunk, "create", (*head, "1" if i == 0 else "0"),
                                 pipe)
                for result in pipe.execute(raise_on_error=False):
                    if isinstance(result, Exception):
                        raise result
        record = self.batch_get(batch.id)
        assert record is not None
        return record

    def batch_add(self, batch_id: str, jobs: Sequence[NewJob]) -> int:
        self._need_one_server()
        added = 0
        for chunk in self._chunks(jobs):
            try:
                with self._errors("batch add"):
                    added += int(self._insert("batch add", chunk, "add", (batch_id,)))
            except StoreError as exc:
                if "NOTFOUND" in str(exc):
                    raise NotFound(f"no batch with id {batch_id}") from exc
                raise
        if not jobs and not self.client.exists(self._bkey(batch_id)):
            raise NotFound(f"no batch with id {batch_id}")
        return added

    def batch_get(self, batch_id: str) -> BatchRecord | None:
        with self._errors("batch get"):
            fields: dict[str, str] = self.client.hgetall(self._bkey(batch_id))  # type: ignore[assignment]
        return _record(batch_id, fields) if fields else None

    def batch_list(self, limit: int = 50, offset: int = 0) -> list[BatchRecord]:
        with self._errors("batch list"):
            ids: list[str] = self.client.zrevrange(  # type: ignore[assignment]
                f"{self.keys.prefix}:{{#}}:batches", offset, offset + limit - 1)
            pipe = self.client.pipeline(transaction=False)
            for batch_id in ids:
                pipe.hgetall(self._bkey(batch_id))
            rows = pipe.execute()
        return [_record(i, f) for i, f in zip(ids, rows, strict=True) if f]

    def batch_cancel(self, batch_id: str, now: float) -> bool:
        with self._errors("batch cancel"):
            done = self._batch_scripts()["admin"](
                keys=[self._bkey(batch_id)], args=(self.keys.prefix, "cancel", repr(now),
                                                   batch_id))
        return bool(done)

    def batch_record(self, marks: Sequence[BatchMark], now: float) -> dict[str, BatchRecord]:
        if not marks:
            return {}
        args: list[Any] = [self.keys.prefix, repr(now)]
        for mark in marks:
            args.extend((mark.batch_id, mark.job_id, mark.outcome.value))
        with self._errors("batch record"):
            out = self._batch_scripts()["record"](keys=[self.keys.workers], args=args)
        records: dict[str, BatchRecord] = {}
        for i in range(0, len(out), 2):
            flat = out[i + 1]
            records[out[i]] = _record(out[i], dict(zip(flat[::2], flat[1::2], strict=True)))
        return records

    def batch_prune(self, older_than: float) -> int:
        with self._errors("batch prune"):
            return int(self._batch_scripts()["admin"](
                keys=[self.keys.workers], args=(self.keys.prefix, "prune", repr(older_than))))

    def jobs_insert_once(self, key: str, records: Sequence[NewJob], now: float) -> bool:
        self._need_one_server()
        with self._errors("insert once"):
            return int(self._insert("insert once", records, "once", (key, repr(now)))) >= 0
