"""PostgreSQL store: batch claims with ``FOR UPDATE SKIP LOCKED``, token-fenced acks in one
round trip each, LISTEN/NOTIFY wake-ups and enqueue inside the caller's transaction.

Pool connections are in autocommit mode: nearly every operation is one statement, so one
round trip and one commit.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Sequence
from typing import Any

import psycopg

from ...errors import ConfigurationError, StoreError
from ...records import (
    FailedRecord,
    Failure,
    Lease,
    MetricSample,
    NewJob,
    QueueStats,
    RecoveryResult,
    Release,
    ReservedJob,
    WorkerInfo,
)
from ..base import Backend, Capabilities
from ..migrations import load_migrations
from .batches import PostgresBatches, job_columns
from .connection import Conn, Listener, Pool, translate
from .options import parse_postgres_url, store_label
from .risks import store_risks
from .statements import Statements

_FAILED_COLUMNS = "uuid, connection, queue, name, payload, exception, failed_at, attempts"
_METRIC_COLUMNS = ("minute, queue, name, worker, processed, failed, released, timed_out, "
                   "runtime_sum, runtime_max, wait_sum, wait_max, histogram")


def _unique(items: Sequence[Failure]) -> list[Failure]:
    """One failure per job: a row may be moved once."""
    return list({x.id: x for x in items}.values())


class _Claim:
    """One claim's parameters (queue order kept, duplicates dropped) and its results."""

    def __init__(self, queues: Sequence[str], limit: int, lease: float, worker: str,
                 now: float) -> None:
        self.queues = list(dict.fromkeys(queues))
        self.token = os.urandom(8).hex()
        self.now, self.expires = now, now + lease
        self.params: list[Any] = []
        for queue in self.queues:
            self.params += [queue, now, queue, limit]
        self.params += [limit if self.queues else 0, now, self.token, worker, self.expires]

    def jobs(self, rows: list[tuple[Any, ...]]) -> list[ReservedJob]:
        rows.sort(key=lambda r: (r[9], r[6], r[0]))  # queue order, then due time, then id
        return [
            ReservedJob(id=r[0], queue=r[1], name=r[2], payload=r[3], attempts=r[4],
                        max_tries=r[5], token=self.token, available_at=r[6],
                        created_at=r[7], reserved_at=self.now,
                        lease_expires_at=self.expires, batch_id=r[8])
            for r in rows
        ]


class PostgresBackend(PostgresBatches, Backend):
    schemes = ("postgresql", "postgres")
    capabilities = Capabilities(transactional_enqueue=True, native_notify=True,
                                shared_across_hosts=True, batches=True)

    def __init__(self, url: str, *, table_prefix: str = "") -> None:
        super().__init__(url, table_prefix=table_prefix)
        self.options = parse_postgres_url(url, table_prefix)
        self.schema = self.options.schema
        self.sql = Statements(self.schema, table_prefix)
        self.t = self.sql.tables
        self.channel = self.options.channel(table_prefix)
        self.label = store_label(url)
        self.pool = Pool(self.options, self.display_url)
        self.listener = Listener(self.options, self.channel, self.display_url)

    def close(self) -> None:
        self.listener.close()
        self.pool.close()

    def ping(self) -> None:
        self.pool.run(lambda c: c.execute("SELECT 1").fetchone())

    # -- schema ------------------------------------------------------------------------
    def migrate(self) -> list[str]:
        """Apply missing migrations in one transaction, under an advisory lock so that two
        ``conveyor migrate`` at once are safe (the second waits, then finds nothing to do)."""
        table = self.t["migrations"]

        def apply(conn: Conn) -> list[str]:
            applied: list[str] = []
            with conn.transaction():
                self.pool.durable_setting(conn)
                conn.execute("SELECT pg_advisory_xact_lock(%s)",
                             (self.options.lock_key(self.table_prefix, "migrate"),))
                conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
                conn.execute(f"CREATE TABLE IF NOT EXISTS {table} (version integer PRIMARY KEY, "
                             "name text NOT NULL, applied_at double precision NOT NULL)")
                done = {r[0] for r in conn.execute(f"SELECT version FROM {table}")}
                for migration in load_migrations(__package__ or "", self.table_prefix):
                    if migration.version in done:
                        continue
                    for statement in migration.statements:
                        conn.execute(statement.replace("{s}", f'"{self.schema}"'))
                    conn.execute(f"INSERT INTO {table} VALUES (%s, %s, %s)",
                                 (migration.version, migration.name, time.time()))
                    applied.append(f"{migration.version:04d}_{migration.name}")
            return applied

        return self.pool.run(apply)

    # -- jobs ----------------------------------------------------------------------------
    def jobs_insert(self, records: Sequence[NewJob], *, connection: Any = None) -> None:
        if not records:
            return
        columns: tuple[Any, ...]
        if len(records) == 1:
            (r,) = records
            sql = self.sql["insert_one"]
            columns = (r.id, r.queue, r.name, r.payload, r.max_tries, r.available_at,
                       r.created_at, r.batch_id)
        else:
            sql = self.sql["insert"]
            columns = job_columns(records)
        if connection is not None:
            # the caller's open transaction: the job (and its NOTIFY) exists iff it commits
            cursor = self._caller_cursor(connection)
            try:
                cursor.execute(sql, (*columns, None, self.channel))
            except psycopg.Error as exc:
                raise translate(exc, self.display_url) from exc
            finally:
                cursor.close()
            return
        # one statement, its commit durable; never retried: a second try after an
        # ambiguous failure could insert twice
        self.pool.run(lambda c: c.execute(sql, (*columns, self.pool.durable_level,
                                                self.channel)), retry=False)

    @staticmethod
    def _caller_cursor(connection: Any) -> Any:
        """A cursor on the caller's connection, or a clear error for what cannot work."""
        if isinstance(connection, psycopg.AsyncConnection):
            raise ConfigurationError(
                "dispatch(connection=…) needs a synchronous connection: an AsyncConnection "
                "cannot be driven from here (open a psycopg.Connection for the transaction)"
            )
        if not callable(getattr(connection, "cursor", None)):
            raise ConfigurationError(
                f"dispatch(connection=…) got {type(connection).__name__}, which has no "
                "cursor(): pass a DB-API connection (psycopg or psycopg2, Django's "
                "django.db.connection, or SQLAlchemy's session.connection().connection)"
            )
        return connection.cursor()

    def jobs_reserve(
        self, queues: Sequence[str], limit: int, lease: float, worker: str, now: float
    ) -> list[ReservedJob]:
        if limit <= 0 or not queues:
            return []
        claim = _Claim(queues, limit, lease, worker, now)
        self.listener.ensure()  # listen before the first claim: no wake-up is missed
        sql = self.sql.claim("reserve", len(claim.queues))
        return claim.jobs(self.pool.run(lambda c: c.execute(sql, claim.params).fetchall()))

    def jobs_ack_and_reserve(
        self, completes: Sequence[Lease], releases: Sequence[Release],
        failures: Sequence[Failure], queues: Sequence[str], limit: int, lease: float,
        worker: str, now: float,
    ) -> list[ReservedJob]:
        """The worker's round (acks of its finished attempts, then its next claim) as one
        statement: one round trip and one commit, durable only when it fails a job."""
        claim = _Claim(queues if limit > 0 else (), limit, lease, worker, now)
        if not (completes or releases or failures or claim.queues):
            return []
        if claim.queues:
            self.listener.ensure()
        done = [[x.id for x in completes], [x.token for x in completes]]
        if releases or failures:
            failures = _unique(failures)
            name, params = "ack_reserve", [
                *done,
                [x.id for x in releases], [x.token for x in releases],
                [x.available_at for x in releases],
                [x.id for x in failures], [x.token for x in failures],
                [x.exception for x in failures], [x.failed_at for x in failures],
                self.pool.durable_level if failures else None, self.label,
                *claim.params, self.channel, now,
            ]
        else:  # the usual round: a shorter statement, without the empty parts
            name, params = "complete_reserve", [*done, *claim.params]
        sql = self.sql.claim(name, len(claim.queues))
        rows = self.pool.run(lambda c: c.execute(sql, params).fetchall())
        return claim.jobs([r for r in rows if r[0] is not None])  # the rest are NOTIFYs

    def _rowcount(self, sql: str, params: Sequence[Any]) -> int:
        return self.pool.run(lambda c: c.execute(sql, params).rowcount)

    def _durable(self, sql: str, params: Sequence[Any]) -> int:
        return self.pool.run_durable(lambda c: c.execute(sql, params)).rowcount

    def jobs_complete(self, leases: Sequence[Lease]) -> int:
        if not leases:
            return 0
        return self._rowcount(self.sql["complete"],
                              ([x.id for x in leases], [x.token for x in leases]))

    def jobs_release(self, items: Sequence[Release]) -> int:
        if not items:
            return 0
        # no clock here: every queue given a job back is notified (inf = "due by then")
        params = ([x.id for x in items], [x.token for x in items],
                  [x.available_at for x in items], self.channel, float("inf"))
        rows = self.pool.run(lambda c: c.execute(self.sql["release"], params).fetchall())
        return sum(int(n) for kind, n in rows if kind == "released")

    def jobs_fail(self, items: Sequence[Failure]) -> int:
        unique = _unique(items)
        if not unique:
            return 0
        params = ([x.id for x in unique], [x.token for x in unique],
                  [x.exception for x in unique], [x.failed_at for x in unique])
        row = self.pool.run(lambda c: c.execute(
            self.sql["fail"], (*params, self.pool.durable_level, self.label)).fetchone())
        return int(row[0]) if row else 0

    def jobs_extend_lease(self, leases: Sequence[Lease], lease: float, now: float) -> list[str]:
        if not leases:
            return []
        params = (now + lease, [x.id for x in leases], [x.token for x in leases])
        held = {r[0] for r in self.pool.run(
            lambda c: c.execute(self.sql["extend"], params).fetchall())}
        return [x.id for x in leases if x.id in held]

    def jobs_recover_expired(
        self, now: float, default_tries: int, limit: int = 1000
    ) -> RecoveryResult:
        params = (self.options.lock_key(self.table_prefix, "recover"), default_tries, now,
                  limit, self.label, now, now, self.channel)
        rows = self.pool.run(lambda c: c.execute(self.sql["recover"], params).fetchall())
        result = RecoveryResult()
        for kind, job_id in rows:
            if kind == "released":
                result.released.append(job_id)
            elif kind == "failed":
                result.failed.append(job_id)
        result.released.sort()
        result.failed.sort()
        return result

    def jobs_get(self, job_id: str) -> ReservedJob | None:
        row = self.pool.run(lambda c: c.execute(self.sql["get"], (job_id,)).fetchone())
        if row is None:
            return None
        return ReservedJob(id=row[0], queue=row[1], name=row[2], payload=row[3], attempts=row[4],
                           max_tries=row[5], available_at=row[6], created_at=row[7],
                           batch_id=row[8], token=row[9] or "", reserved_at=row[10] or 0.0,
                           lease_expires_at=row[11] or 0.0)

    # -- failed store ----------------------------------------------------------------------
    @staticmethod
    def _failed(row: Sequence[Any]) -> FailedRecord:
        return FailedRecord(id=row[0], connection=row[1], queue=row[2], name=row[3],
                            payload=row[4], exception=row[5], failed_at=row[6],
                            attempts=row[7])

    def failed_list(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[FailedRecord]:
        sql = (f"SELECT {_FAILED_COLUMNS} FROM {self.t['failed']} "
               "WHERE (%s::text IS NULL OR queue = %s) "
               "ORDER BY failed_at DESC, id DESC LIMIT %s OFFSET %s")
        rows = self.pool.run(lambda c: c.execute(sql, (queue, queue, limit, offset)).fetchall())
        return [self._failed(r) for r in rows]

    def failed_get(self, job_id: str) -> FailedRecord | None:
        sql = f"SELECT {_FAILED_COLUMNS} FROM {self.t['failed']} WHERE uuid = %s"
        row = self.pool.run(lambda c: c.execute(sql, (job_id,)).fetchone())
        return None if row is None else self._failed(row)

    def failed_retry(
        self, ids: Iterable[str] | None, now: float, queue: str | None = None
    ) -> list[str]:
        wanted = None if ids is None else list(dict.fromkeys(ids))
        if wanted == []:
            return []
        params = (wanted, wanted, queue, queue, now, now, self.channel)
        rows = self.pool.run_durable(
            lambda c: c.execute(self.sql["failed_retry"], params)).fetchall()
        moved = {r[0]: r[1] for r in rows if r[1] is not None}
        if wanted is not None:
            return [job_id for job_id in wanted if job_id in moved]
        return sorted(moved, key=lambda job_id: moved[job_id])

    def failed_forget(self, job_id: str) -> bool:
        return self._durable(f"DELETE FROM {self.t['failed']} WHERE uuid = %s",
                              (job_id,)) > 0

    def failed_flush(self, older_than: float | None = None) -> int:
        return self._durable(f"DELETE FROM {self.t['failed']} "
                              "WHERE %s::float8 IS NULL OR failed_at < %s",
                              (older_than, older_than))

    # -- control -------------------------------------------------------------------------
    def queue_pause(self, queue: str) -> None:
        self._durable(f"INSERT INTO {self.t['queues']} (queue, paused) "
                      "VALUES (%s, true) ON CONFLICT (queue) DO UPDATE SET paused = true",
                      (queue,))

    def queue_resume(self, queue: str) -> None:
        def resume(conn: Conn) -> None:
            with conn.transaction():
                self.pool.durable_setting(conn)
                conn.execute(f"DELETE FROM {self.t['queues']} WHERE queue = %s",
                             (queue,))
                conn.execute("SELECT pg_notify(%s, %s)", (self.channel, queue))

        self.pool.run(resume)

    def store_risks(self) -> list[str]:
        return self.pool.run(lambda c: store_risks(c, self.t["jobs"]))

    def queues_paused(self) -> set[str]:
        rows = self.pool.run(lambda c: c.execute(
            f"SELECT queue FROM {self.t['queues']} WHERE paused").fetchall())
        return {r[0] for r in rows}

    def queue_clear(self, queues: Sequence[str]) -> int:
        return self._durable(f"DELETE FROM {self.t['jobs']} "
                             "WHERE queue = ANY(%s::text[]) AND reserved_at IS NULL",
                              (list(queues),))

    def restart_signal_write(self, stamp: float) -> None:
        self._durable(f"INSERT INTO {self.t['control']} (key, value) "
                      "VALUES ('restart', %s) ON CONFLICT (key) DO UPDATE SET value = "
                      "EXCLUDED.value", (repr(stamp),))

    def restart_signal_read(self) -> float | None:
        row = self.pool.run(lambda c: c.execute(
            f"SELECT value FROM {self.t['control']} WHERE key = 'restart'").fetchone())
        return None if row is None else float(row[0])

    def worker_register(self, worker: WorkerInfo) -> None:
        self.worker_heartbeat(worker)

    def worker_heartbeat(self, worker: WorkerInfo) -> None:
        self.pool.run(lambda c: c.execute(
            f"INSERT INTO {self.t['workers']} (name, data, last_heartbeat) "
            "VALUES (%s, %s::jsonb, %s) ON CONFLICT (name) DO UPDATE SET data = EXCLUDED.data, "
            "last_heartbeat = EXCLUDED.last_heartbeat",
            (worker.name, json.dumps(worker.to_dict()), worker.last_heartbeat)))

    def worker_list(self) -> list[WorkerInfo]:
        rows = self.pool.run(lambda c: c.execute(
            f"SELECT data FROM {self.t['workers']} ORDER BY name").fetchall())
        return [WorkerInfo.from_dict(r[0]) for r in rows]

    def worker_remove(self, name: str) -> None:
        self.pool.run(lambda c: c.execute(
            f"DELETE FROM {self.t['workers']} WHERE name = %s", (name,)))

    # -- monitoring --------------------------------------------------------------------------
    def queue_stats(self, now: float) -> list[QueueStats]:
        def fetch(conn: Conn) -> list[QueueStats]:
            stats: dict[str, QueueStats] = {}
            for queue, available, scheduled, running, oldest in conn.execute(
                    self.sql["queue_stats"], (now, now, now)):
                stats[queue] = QueueStats(queue, available, scheduled, running, 0, oldest)
            for queue, failed in conn.execute(
                    f"SELECT queue, count(*) FROM {self.t['failed']} GROUP BY queue"):
                stats.setdefault(queue, QueueStats(queue)).failed = failed
            for (queue,) in conn.execute(
                    f"SELECT queue FROM {self.t['queues']} WHERE paused"):
                stats.setdefault(queue, QueueStats(queue)).paused = True
            return [stats[q] for q in sorted(stats)]

        return self.pool.run(fetch)

    def metrics_record(self, samples: Sequence[MetricSample]) -> None:
        if not samples:
            return
        rows = [(s.minute, s.queue, s.name, s.worker, s.processed, s.failed, s.released,
                 s.timed_out, s.runtime_sum, s.runtime_max, s.wait_sum, s.wait_max,
                 list(s.histogram)) for s in samples]

        def record(conn: Conn) -> None:
            with conn.transaction(), conn.cursor() as cur:
                cur.executemany(self.sql["metrics_record"], rows)

        self.pool.run(record)

    def metrics_read(self, since: float, until: float | None = None) -> list[MetricSample]:
        sql = (f"SELECT {_METRIC_COLUMNS} FROM {self.t['metrics']} "
               "WHERE minute >= %s AND (%s::float8 IS NULL OR minute < %s) "
               "ORDER BY minute, queue, name, worker")
        rows = self.pool.run(lambda c: c.execute(sql, (since, until, until)).fetchall())
        return [MetricSample(int(r[0]), r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9],
                             r[10], r[11], list(r[12])) for r in rows]

    def metrics_prune(self, older_than: float) -> int:
        return self._rowcount(f"DELETE FROM {self.t['metrics']} WHERE minute < %s",
                              (older_than,))

    # -- waiting ---------------------------------------------------------------------------
    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> bool:
        """Block on the LISTEN connection until a dispatch to one of ``queues`` commits."""
        try:
            return self.listener.wait(queues, timeout)
        except StoreError:
            raise
        except psycopg.Error as exc:  # pragma: no cover - translated inside the listener
            raise translate(exc, self.display_url) from exc
