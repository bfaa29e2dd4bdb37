"""PostgreSQL batch bookkeeping (docs/batches.md).

No single hot row: each job's outcome is one member row (``FOR UPDATE`` on it alone), the
counter change lands in one of a few shard rows per batch chosen at random, and the
``job_batches`` row itself is written only when ``failed_job_ids`` changes, on cancel and
once at the finish, when the shards are folded into it. Reads add the shards up.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import NotFound
from ...records import BatchMark, BatchRecord, NewBatch, NewJob
from ..sqlfiles import named_statements

if TYPE_CHECKING:
    from .connection import Conn, Pool

T = TypeVar("T")
_SHARDS = 16
_CHUNK = 5000  # jobs per statement; all statements of a call travel pipelined


def _record(row: Sequence[Any]) -> BatchRecord:
    return BatchRecord(
        id=row[0], name=row[1], total_jobs=int(row[2]), pending_jobs=int(row[3]),
        failed_jobs=int(row[4]), failed_job_ids=list(json.loads(row[5] or "[]")),
        options=row[6] or "{}", created_at=float(row[7]), cancelled_at=row[8],
        finished_at=row[9])


def job_columns(records: Sequence[NewJob]) -> tuple[list[Any], ...]:
    """The eight arrays of the job-insert statements (``insert``, ``insert_once``)."""
    return ([r.id for r in records], [r.queue for r in records], [r.name for r in records],
            [r.payload for r in records], [r.max_tries for r in records],
            [r.available_at for r in records], [r.created_at for r in records],
            [r.batch_id for r in records])


class PostgresBatches:
    """Mixed into PostgresBackend; uses its pool, statements and notify channel."""

    if TYPE_CHECKING:
        pool: Pool
        schema: str
        table_prefix: str
        channel: str
        sql: Any

    @property
    def _bsql(self) -> dict[str, str]:
        cached: dict[str, str] | None = getattr(self, "_batch_sql", None)
        if cached is None:
            s = f'"{self.schema}".{self.table_prefix}'
            tables = {"batches": f"{s}job_batches", "members": f"{s}job_batch_members",
                      "counts": f"{s}job_batch_counts", "keys": f"{s}dispatch_keys",
                      "jobs": f"{s}jobs"}
            cached = {}
            for name, body in named_statements(__package__ or "", "batches.sql").items():
                for key, table in tables.items():
                    body = body.replace("{" + key + "}", table)
                cached[name] = body
            self._batch_sql = cached
        return cached

    def _batch_insert_jobs(self, conn: Conn, records: Sequence[NewJob]) -> None:
        for start in range(0, len(records), _CHUNK):
            chunk = records[start:start + _CHUNK]
            # NULL: the transaction is already durable (_in_transaction)
            conn.execute(self.sql["insert"], (*job_columns(chunk), None, self.channel))

    def _in_transaction(self, fn: Callable[[Conn], T]) -> T:
        """``fn`` in one durable transaction; never retried (it inserts jobs)."""
        def run(conn: Conn) -> T:
            with conn.transaction():
                self.pool.durable_setting(conn)
                return fn(conn)
        return self.pool.run(run, retry=False)

    def batch_create(self, batch: NewBatch, jobs: Sequence[NewJob]) -> BatchRecord:
        q = self._bsql

        def create(conn: Conn) -> None:
            with conn.pipeline():  # every statement in one round trip per chunk window
                conn.execute(q["create"], (batch.id, batch.name, len(jobs), len(jobs),
                                           batch.options, batch.created_at))
                for start in range(0, len(jobs), _CHUNK):
                    conn.execute(q["members_new"],
                                 (batch.id, [j.id for j in jobs[start:start + _CHUNK]]))
                self._batch_insert_jobs(conn, jobs)

        self._in_transaction(create)
        record = self.batch_get(batch.id)
        assert record is not None
        return record

    def batch_add(self, batch_id: str, jobs: Sequence[NewJob]) -> int:
        q = self._bsql

        def add(conn: Conn) -> int:
            if conn.execute(q["exists"], (batch_id,)).fetchone() is None:
                raise NotFound(f"no batch with id {batch_id}")
            fresh = {r[0] for r in conn.execute(
                q["members_add"], (batch_id, [j.id for j in jobs])).fetchall()}
            added = [j for j in jobs if j.id in fresh]
            if added:
                self._batch_insert_jobs(conn, added)
                conn.execute(q["count_add"], (batch_id, random.randrange(_SHARDS), len(added),
                                              len(added)))
            return len(added)

        return self._in_transaction(add)

    def _batch_read(self, ids: Sequence[str]) -> dict[str, BatchRecord]:
        rows = self.pool.run(lambda c: c.execute(self._bsql["read"], (list(ids),)).fetchall())
        return {row[0]: _record(row) for row in rows}

    def batch_get(self, batch_id: str) -> BatchRecord | None:
        return self._batch_read([batch_id]).get(batch_id)

    def batch_list(self, limit: int = 50, offset: int = 0) -> list[BatchRecord]:
        rows = self.pool.run(lambda c: c.execute(self._bsql["list"],
                                                 (limit, offset)).fetchall())
        return [_record(row) for row in rows]

    def batch_cancel(self, batch_id: str, now: float) -> bool:
        cur = self.pool.run(lambda c: c.execute(self._bsql["cancel"], (now, batch_id)))
        return cur.rowcount > 0

    def batch_record(self, marks: Sequence[BatchMark], now: float) -> dict[str, BatchRecord]:
        if not marks:
            return {}
        params = ([m.batch_id for m in marks], [m.job_id for m in marks],
                  [m.outcome.value for m in marks], random.randrange(_SHARDS))
        # autocommit: the change is committed before the read below, so of two workers
        # recording the last two jobs at once, the later reader sees both
        self.pool.run(lambda c: c.execute(self._bsql["record"], params).fetchone())
        records = self._batch_read(list(dict.fromkeys(m.batch_id for m in marks)))
        for batch_id, record in list(records.items()):
            if record.all_ran and record.finished_at is None:
                self._batch_finish(batch_id, now)
                records[batch_id] = self._batch_read([batch_id]).get(batch_id, record)
        return records

    def _batch_finish(self, batch_id: str, now: float) -> None:
        sql = self._bsql["finish"]
        self.pool.run(lambda c: c.execute(sql, (batch_id, now, batch_id)))

    def batch_prune(self, older_than: float) -> int:
        row = self.pool.run(lambda c: c.execute(self._bsql["prune"],
                                                (older_than, older_than)).fetchone())
        return int(row[0]) if row else 0

    def jobs_insert_once(self, key: str, records: Sequence[NewJob], now: float) -> bool:
        params = (key, now, *job_columns(records), self.channel)
        row = self.pool.run_durable(lambda c: c.execute(self._bsql["insert_once"], params),
                                    retry=False).fetchone()
        return bool(row and row[0])
