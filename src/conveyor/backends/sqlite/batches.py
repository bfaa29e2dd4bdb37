"""SQLite batch bookkeeping: ``job_batches``, one member row per job, ``dispatch_keys``.

SQLite has one writer at a time, so counters live on the batch row and each
``batch_record`` call is one short ``BEGIN IMMEDIATE`` transaction for many marks.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, TypeVar

from ...errors import NotFound
from ...records import BatchMark, BatchRecord, NewBatch, NewJob
from ..batch_rules import merge_failed_ids, outcome_delta

T = TypeVar("T")
_COLUMNS = ("id, name, total_jobs, pending_jobs, failed_jobs, failed_job_ids, options, "
            "created_at, cancelled_at, finished_at")
_CHUNK = 500


def _record(row: Sequence[Any]) -> BatchRecord:
    return BatchRecord(
        id=row[0], name=row[1], total_jobs=int(row[2]), pending_jobs=int(row[3]),
        failed_jobs=int(row[4]), failed_job_ids=list(json.loads(row[5])), options=row[6],
        created_at=float(row[7]), cancelled_at=row[8], finished_at=row[9])


class SQLiteBatches:
    """Mixed into SQLiteBackend; uses its writer transaction and table prefix."""

    if TYPE_CHECKING:
        table_prefix: str

        def _write(self) -> AbstractContextManager[sqlite3.Connection]: ...
        def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T: ...
        def _insert_jobs(self, conn: sqlite3.Connection, records: Sequence[NewJob]) -> None: ...

    @property
    def _tb(self) -> str:
        return f"{self.table_prefix}job_batches"

    @property
    def _tm(self) -> str:
        return f"{self.table_prefix}job_batch_members"

    def _get(self, conn: sqlite3.Connection, batch_id: str) -> BatchRecord | None:
        row = conn.execute(f"SELECT {_COLUMNS} FROM {self._tb} WHERE id = ?",
                           (batch_id,)).fetchone()
        return None if row is None else _record(row)

    def _add_members(self, conn: sqlite3.Connection, batch_id: str,
                     jobs: Sequence[NewJob]) -> list[NewJob]:
        """Member rows for jobs not yet members; returns those new ones."""
        added: list[NewJob] = []
        for job in jobs:
            cur = conn.execute(
                f"INSERT OR IGNORE INTO {self._tm} (batch_id, job_id) VALUES (?, ?)",
                (batch_id, job.id))
            if cur.rowcount:
                added.append(job)
        return added

    def batch_create(self, batch: NewBatch, jobs: Sequence[NewJob]) -> BatchRecord:
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO {self._tb} ({_COLUMNS}) VALUES (?, ?, 0, 0, 0, '[]', ?, ?, NULL, "
                "NULL)", (batch.id, batch.name, batch.options, batch.created_at))
            # a fresh batch: every job is a new member (a repeated id fails the whole call)
            conn.executemany(f"INSERT INTO {self._tm} (batch_id, job_id) VALUES (?, ?)",
                             [(batch.id, job.id) for job in jobs])
            for start in range(0, len(jobs), _CHUNK):
                self._insert_jobs(conn, jobs[start:start + _CHUNK])
            conn.execute(f"UPDATE {self._tb} SET total_jobs = ?, pending_jobs = ? WHERE id = ?",
                         (len(jobs), len(jobs), batch.id))
            record = self._get(conn, batch.id)
        assert record is not None
        return record

    def batch_add(self, batch_id: str, jobs: Sequence[NewJob]) -> int:
        with self._write() as conn:
            if self._get(conn, batch_id) is None:
                raise NotFound(f"no batch with id {batch_id}")
            added = self._add_members(conn, batch_id, jobs)
            for start in range(0, len(added), _CHUNK):
                self._insert_jobs(conn, added[start:start + _CHUNK])
            conn.execute(
                f"UPDATE {self._tb} SET total_jobs = total_jobs + ?, "
                "pending_jobs = pending_jobs + ? WHERE id = ?", (len(added), len(added), batch_id))
        return len(added)

    def batch_get(self, batch_id: str) -> BatchRecord | None:
        return self._read(lambda c: self._get(c, batch_id))

    def batch_list(self, limit: int = 50, offset: int = 0) -> list[BatchRecord]:
        return self._read(lambda c: [_record(r) for r in c.execute(
            f"SELECT {_COLUMNS} FROM {self._tb} ORDER BY created_at DESC, id DESC "
            "LIMIT ? OFFSET ?", (limit, offset))])

    def batch_cancel(self, batch_id: str, now: float) -> bool:
        with self._write() as conn:
            conn.execute(f"UPDATE {self._tb} SET cancelled_at = ? WHERE id = ? "
                         "AND cancelled_at IS NULL", (now, batch_id))
            return self._get(conn, batch_id) is not None

    def batch_record(self, marks: Sequence[BatchMark], now: float) -> dict[str, BatchRecord]:
        if not marks:
            return {}
        with self._write() as conn:
            # per batch: pending delta, failed delta, failed ids added / removed
            changes: dict[str, tuple[int, int, list[str], set[str]]] = {}
            for mark in marks:
                row = conn.execute(f"SELECT outcome FROM {self._tm} WHERE batch_id = ? AND "
                                   "job_id = ?", (mark.batch_id, mark.job_id)).fetchone()
                delta = None if row is None else outcome_delta(row[0], mark.outcome.value)
                pending, failed, added, removed = changes.setdefault(
                    mark.batch_id, (0, 0, [], set()))
                if delta is None:
                    continue
                conn.execute(f"UPDATE {self._tm} SET outcome = ? WHERE batch_id = ? AND "
                             "job_id = ?", (mark.outcome.value, mark.batch_id, mark.job_id))
                if delta.add_failed_id:
                    added.append(mark.job_id)
                    removed.discard(mark.job_id)
                if delta.remove_failed_id:
                    removed.add(mark.job_id)
                changes[mark.batch_id] = (pending + delta.pending, failed + delta.failed,
                                          added, removed)
            records: dict[str, BatchRecord] = {}
            for batch_id, (pending, failed, added, removed) in changes.items():
                current = self._get(conn, batch_id)
                if current is None:
                    continue
                if pending or failed or added or removed:
                    ids = merge_failed_ids(current.failed_job_ids, added, removed)
                    conn.execute(
                        f"UPDATE {self._tb} SET pending_jobs = pending_jobs + ?, "
                        "failed_jobs = failed_jobs + ?, failed_job_ids = ?, "
                        "finished_at = CASE WHEN finished_at IS NULL AND "
                        "pending_jobs + ? <= failed_jobs + ? THEN ? ELSE finished_at END "
                        "WHERE id = ?",
                        (pending, failed, json.dumps(ids), pending, failed, now, batch_id))
                    current = self._get(conn, batch_id)
                    assert current is not None
                records[batch_id] = current
        return records

    def batch_prune(self, older_than: float) -> int:
        with self._write() as conn:
            ids = [r[0] for r in conn.execute(
                f"SELECT id FROM {self._tb} WHERE finished_at IS NOT NULL AND finished_at < ?",
                (older_than,))]
            for batch_id in ids:
                conn.execute(f"DELETE FROM {self._tm} WHERE batch_id = ?", (batch_id,))
                conn.execute(f"DELETE FROM {self._tb} WHERE id = ?", (batch_id,))
            conn.execute(f"DELETE FROM {self.table_prefix}dispatch_keys WHERE created_at < ?",
                         (older_than,))
        return len(ids)

    def jobs_insert_once(self, key: str, records: Sequence[NewJob], now: float) -> bool:
        with self._write() as conn:
            cur = conn.execute(f"INSERT OR IGNORE INTO {self.table_prefix}dispatch_keys "
                               "(key, created_at) VALUES (?, ?)", (key, now))
            if not cur.rowcount:
                return False
            self._insert_jobs(conn, records)
            return True
