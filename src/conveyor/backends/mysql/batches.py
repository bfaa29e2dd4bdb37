"""MySQL / MariaDB batch bookkeeping (docs/batches.md).

No single hot row: a mark locks only its job's member row; the counter change goes to one
of a few shard rows per batch picked at random; the ``job_batches`` row is written only
when ``failed_job_ids`` changes, on cancel, and once at the finish, when the shards are
folded into it. Deadlocks between concurrent marks are retried by the pool.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from pymysql.cursors import Cursor

from ...errors import NotFound
from ...records import BatchMark, BatchRecord, NewBatch, NewJob
from ..batch_rules import merge_failed_ids, outcome_delta
from ..sqlfiles import named_statements
from .sql import chunks, expand

if TYPE_CHECKING:
    from .pool import Pool

_SHARDS = 16


def _record(row: Sequence[Any]) -> BatchRecord:
    return BatchRecord(
        id=row[0], name=row[1], total_jobs=int(row[2]), pending_jobs=int(row[3]),
        failed_jobs=int(row[4]), failed_job_ids=list(json.loads(row[5] or "[]")),
        options=row[6] or "{}", created_at=float(row[7]),
        cancelled_at=None if row[8] is None else float(row[8]),
        finished_at=None if row[9] is None else float(row[9]))


class MySQLBatches:
    """Mixed into MySQLBackend; uses its pool, queries and qualified table prefix."""

    if TYPE_CHECKING:
        pool: Pool
        q: dict[str, str]
        qualified_prefix: str

    @property
    def _bq(self) -> dict[str, str]:
        cached: dict[str, str] | None = getattr(self, "_batch_queries", None)
        if cached is None:
            cached = {name: body.replace("{p}", self.qualified_prefix) for name, body in
                      named_statements(__package__ or "", "batches.sql").items()}
            self._batch_queries = cached
        return cached

    def _batch_insert_jobs(self, cur: Cursor, records: Sequence[NewJob]) -> None:
        for chunk in chunks(records):
            cur.executemany(self.q["jobs_insert"], [
                (r.id, r.queue, r.name, r.payload, r.max_tries, r.available_at, r.created_at,
                 r.batch_id) for r in chunk])

    def batch_create(self, batch: NewBatch, jobs: Sequence[NewJob]) -> BatchRecord:
        q = self._bq

        def create(cur: Cursor) -> None:
            cur.execute(q["create"], (batch.id, batch.name, len(jobs), len(jobs), batch.options,
                                      batch.created_at))
            for chunk in chunks(jobs):
                cur.executemany(q["member_new"], [(batch.id, j.id) for j in chunk])
            self._batch_insert_jobs(cur, jobs)

        self.pool.run(create, what="batch create", idempotent=False)
        record = self.batch_get(batch.id)
        assert record is not None
        return record

    def batch_add(self, batch_id: str, jobs: Sequence[NewJob]) -> int:
        q = self._bq

        def add(cur: Cursor) -> int:
            cur.execute(q["exists"], (batch_id,))
            if cur.fetchone() is None:
                raise NotFound(f"no batch with id {batch_id}")
            added: list[NewJob] = []
            for job in jobs:
                if cur.execute(q["member_add"], (batch_id, job.id)):
                    added.append(job)
            if added:
                self._batch_insert_jobs(cur, added)
                cur.execute(q["count_add"], (batch_id, random.randrange(_SHARDS), len(added),
                                             len(added), 0))
            return len(added)

        return self.pool.run(add, what="batch add", idempotent=False)

    def _batch_read(self, ids: Sequence[str]) -> dict[str, BatchRecord]:
        if not ids:
            return {}
        sql = expand(self._bq["read"], ids=len(ids))

        def read(cur: Cursor) -> list[Any]:
            cur.execute(sql, list(ids))
            return list(cur.fetchall())

        rows = self.pool.run(read, what="batch read", transaction=False)
        return {row[0]: _record(row) for row in rows}

    def batch_get(self, batch_id: str) -> BatchRecord | None:
        return self._batch_read([batch_id]).get(batch_id)

    def batch_list(self, limit: int = 50, offset: int = 0) -> list[BatchRecord]:
        def read(cur: Cursor) -> list[Any]:
            cur.execute(self._bq["list"], (limit, offset))
            return list(cur.fetchall())

        return [_record(r) for r in self.pool.run(read, what="batch list", transaction=False)]

    def batch_cancel(self, batch_id: str, now: float) -> bool:
        def cancel(cur: Cursor) -> bool:
            cur.execute(self._bq["cancel"], (now, batch_id))
            cur.execute(self._bq["exists"], (batch_id,))
            return cur.fetchone() is not None

        return self.pool.run(cancel, what="batch cancel")

    def batch_record(self, marks: Sequence[BatchMark], now: float) -> dict[str, BatchRecord]:
        if not marks:
            return {}
        q = self._bq
        wanted = {(m.batch_id, m.job_id): m for m in marks}

        def record(cur: Cursor) -> None:
            pairs = sorted(wanted)
            cur.execute(expand(q["members_lock"], pairs=len(pairs)),
                        [v for pair in pairs for v in pair])
            # per batch: pending delta, failed delta, failed ids added / removed
            changes: dict[str, tuple[int, int, list[str], set[str]]] = {}
            for batch_id, job_id, outcome in cur.fetchall():
                delta = outcome_delta(outcome, wanted[(batch_id, job_id)].outcome.value)
                if delta is None:
                    continue
                cur.execute(q["member_set"], (wanted[(batch_id, job_id)].outcome.value,
                                              batch_id, job_id))
                pending, failed, added, removed = changes.get(batch_id, (0, 0, [], set()))
                if delta.add_failed_id:
                    added.append(job_id)
                if delta.remove_failed_id:
                    removed.add(job_id)
                changes[batch_id] = (pending + delta.pending, failed + delta.failed, added,
                                     removed)
            for batch_id, (pending, failed, added, removed) in sorted(changes.items()):
                cur.execute(q["count_add"], (batch_id, random.randrange(_SHARDS), 0, pending,
                                             failed))
                if added or removed:
                    cur.execute(q["failed_ids_lock"], (batch_id,))
                    row = cur.fetchone()
                    current = list(json.loads(row[0] or "[]")) if row else []
                    cur.execute(q["failed_ids_set"], (
                        json.dumps(merge_failed_ids(current, added, removed)), batch_id))

        # committed before the read below: of two workers marking the last two jobs at
        # once, the later reader sees both
        self.pool.run(record, what="batch record")
        records = self._batch_read(list(dict.fromkeys(m.batch_id for m in marks)))
        for batch_id, state in list(records.items()):
            if state.all_ran and state.finished_at is None:
                self._batch_finish(batch_id, now)
                records[batch_id] = self._batch_read([batch_id]).get(batch_id, state)
        return records

    def _batch_finish(self, batch_id: str, now: float) -> None:
        """Fold the shards into the row and stamp ``finished_at``, once."""
        q = self._bq

        def finish(cur: Cursor) -> None:
            cur.execute(q["shards_lock"], (batch_id,))
            row = cur.fetchone()
            total, pending, failed = (int(v) for v in row) if row else (0, 0, 0)
            cur.execute(q["shards_delete"], (batch_id,))
            cur.execute(q["finish"], (total, pending, failed, now, batch_id))

        self.pool.run(finish, what="batch finish")

    def batch_prune(self, older_than: float) -> int:
        q = self._bq

        def prune(cur: Cursor) -> int:
            cur.execute(q["prunable"], (older_than,))
            ids = [r[0] for r in cur.fetchall()]
            for batch_id in ids:
                for name in ("prune_members", "prune_counts", "prune_batch"):
                    cur.execute(q[name], (batch_id,))
            cur.execute(q["prune_keys"], (older_than,))
            return len(ids)

        return self.pool.run(prune, what="batch prune")

    def jobs_insert_once(self, key: str, records: Sequence[NewJob], now: float) -> bool:
        def insert(cur: Cursor) -> bool:
            if not cur.execute(self._bq["key_take"], (key, now)):
                return False
            self._batch_insert_jobs(cur, records)
            return True

        return self.pool.run(insert, what="insert once", idempotent=False)
