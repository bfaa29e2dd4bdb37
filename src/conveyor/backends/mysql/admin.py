"""The MySQL store's failed store, control, worker registry and monitoring reads."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from typing import Any

from pymysql.cursors import Cursor

from ...records import FailedRecord, MetricSample, QueueStats, WorkerInfo
from .pool import Pool
from .sql import chunks, expand


def _failed(row: Sequence[Any]) -> FailedRecord:
    return FailedRecord(id=row[0], connection=row[1], queue=row[2], name=row[3],
                        payload=row[4], exception=row[5], failed_at=row[6], attempts=row[7])


class AdminMixin:
    """Everything but the job transitions; needs ``pool`` and ``q``."""

    pool: Pool
    q: dict[str, str]

    def _read(self, sql: str, args: Sequence[Any] = (), what: str = "read") -> list[Any]:
        def fetch(cur: Cursor) -> list[Any]:
            cur.execute(sql, args)
            return list(cur.fetchall())

        return self.pool.run(fetch, what=what, transaction=False)

    def _write(self, sql: str, args: Sequence[Any] = (), what: str = "write") -> int:
        return self.pool.run(lambda cur: int(cur.execute(sql, args)), what=what,
                             transaction=False)

    # -- failed store ---------------------------------------------------------------------
    def failed_list(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[FailedRecord]:
        if queue:
            rows = self._read(self.q["failed_list_queue"], (queue, limit, offset))
        else:
            rows = self._read(self.q["failed_list"], (limit, offset))
        return [_failed(row) for row in rows]

    def failed_get(self, job_id: str) -> FailedRecord | None:
        rows = self._read(self.q["failed_get"], (job_id,))
        return _failed(rows[0]) if rows else None

    def failed_retry(
        self, ids: Iterable[str] | None, now: float, queue: str | None = None
    ) -> list[str]:
        wanted = None if ids is None else list(dict.fromkeys(ids))

        def work(cur: Cursor) -> list[str]:
            found: set[str] = set()
            if wanted is None:
                cur.execute(*((self.q["failed_all_queue"], (queue,)) if queue
                              else (self.q["failed_all"], ())))
                order = [str(row[0]) for row in cur.fetchall()]
                found = set(order)
            else:
                order = wanted
                for part in chunks(wanted):
                    sql = self.q["failed_some_queue" if queue else "failed_some"]
                    cur.execute(expand(sql, ids=len(part)), [*part, queue] if queue else part)
                    found.update(str(row[0]) for row in cur.fetchall())
            retried = [job_id for job_id in order if job_id in found]
            for part in chunks(retried):
                # a stale copy of the job (never expected) gives way, as INSERT OR REPLACE
                cur.execute(expand(self.q["jobs_delete_uuids"], ids=len(part)), part)
                cur.execute(expand(self.q["failed_requeue"], ids=len(part)), (now, now, *part))
                cur.execute(expand(self.q["failed_delete_uuids"], ids=len(part)), part)
            return retried

        return self.pool.run(work, what="retry failed jobs")

    def failed_forget(self, job_id: str) -> bool:
        return self._write(self.q["failed_forget"], (job_id,), "forget") > 0

    def failed_flush(self, older_than: float | None = None) -> int:
        if older_than is None:
            return self._write(self.q["failed_flush"], (), "flush")
        return self._write(self.q["failed_flush_older"], (older_than,), "flush")

    # -- control -------------------------------------------------------------------------
    def queue_pause(self, queue: str) -> None:
        self._write(self.q["queue_pause"], (queue,), "pause")

    def queue_resume(self, queue: str) -> None:
        self._write(self.q["queue_resume"], (queue,), "resume")

    def queues_paused(self) -> set[str]:
        return {str(row[0]) for row in self._read(self.q["queues_paused"])}

    def queue_clear(self, queues: Sequence[str]) -> int:
        names = list(dict.fromkeys(queues))
        if not names:
            return 0
        return self._write(expand(self.q["queue_clear"], ids=len(names)), names, "clear")

    def restart_signal_write(self, stamp: float) -> None:
        self._write(self.q["control_set"], ("restart", repr(stamp)), "restart signal")

    def restart_signal_read(self) -> float | None:
        rows = self._read(self.q["control_get"], ("restart",))
        return float(rows[0][0]) if rows else None

    def worker_register(self, worker: WorkerInfo) -> None:
        self.worker_heartbeat(worker)

    def worker_heartbeat(self, worker: WorkerInfo) -> None:
        self._write(self.q["worker_upsert"],
                    (worker.name, json.dumps(worker.to_dict()), worker.last_heartbeat),
                    "worker heartbeat")

    def worker_list(self) -> list[WorkerInfo]:
        return [WorkerInfo.from_dict(json.loads(row[0]))
                for row in self._read(self.q["worker_list"])]

    def worker_remove(self, name: str) -> None:
        self._write(self.q["worker_remove"], (name,), "remove worker")

    # -- monitoring ------------------------------------------------------------------------
    def queue_stats(self, now: float) -> list[QueueStats]:
        def fetch(cur: Cursor) -> list[QueueStats]:
            stats: dict[str, QueueStats] = {}
            cur.execute(self.q["queue_stats"], (now, now, now))
            for queue, available, scheduled, running, oldest in cur.fetchall():
                stats[queue] = QueueStats(queue, int(available or 0), int(scheduled or 0),
                                          int(running or 0), 0, oldest)
            cur.execute(self.q["failed_counts"])
            for queue, failed in cur.fetchall():
                stats.setdefault(queue, QueueStats(queue)).failed = int(failed)
            cur.execute(self.q["queues_paused"])
            for (queue,) in cur.fetchall():
                stats.setdefault(queue, QueueStats(queue)).paused = True
            return [stats[name] for name in sorted(stats)]

        return self.pool.run(fetch, what="queue stats", transaction=False)

    def metrics_record(self, samples: Sequence[MetricSample]) -> None:
        if not samples:
            return
        rows = [(s.minute, s.queue, s.name, s.worker, s.processed, s.failed, s.released,
                 s.timed_out, s.runtime_sum, s.runtime_max, s.wait_sum, s.wait_max,
                 json.dumps(s.histogram)) for s in samples]
        self.pool.run(lambda cur: cur.executemany(self.q["metrics_upsert"], rows),
                      what="record metrics", transaction=False)

    def metrics_read(self, since: float, until: float | None = None) -> list[MetricSample]:
        rows = self._read(self.q["metrics_read"],
                          (since, until if until is not None else 1e18), "read metrics")
        return [MetricSample(int(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]),
                             int(r[7]), float(r[8]), float(r[9]), float(r[10]), float(r[11]),
                             [int(v) for v in json.loads(r[12])]) for r in rows]

    def metrics_prune(self, older_than: float) -> int:
        return self._write(self.q["metrics_prune"], (older_than,), "prune metrics")
