"""SQLite store: WAL, ``BEGIN IMMEDIATE``, a busy timeout, one writer connection per process.

Waiting uses ``PRAGMA data_version`` on a connection of its own: it changes whenever
another connection commits, so an idle worker learns of new jobs in a few milliseconds
without reading any table.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, unquote

from ...errors import ConfigurationError, StoreError, StoreUnavailable
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
from .batches import SQLiteBatches

T = TypeVar("T")
_SYNC_MODES = ("off", "normal", "full", "extra")
_CHUNK = 500  # rows per statement; SQLite's variable limit is 32766 on modern builds
_RESERVE_COLUMNS = (
    "id, queue, name, payload, attempts, max_tries, available_at, created_at, batch_id"
)
_POLL_INTERVAL = 0.002


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``sqlite:///rel.db`` -> ``rel.db``; ``sqlite:////abs.db`` -> ``/abs.db``."""
    rest = url.split("://", 1)[1] if "://" in url else url
    path, _, query = rest.partition("?")
    if path.startswith("/"):
        path = path[1:]
    path = unquote(path)
    if not path or path == ":memory:":
        raise ConfigurationError(
            f"SQLite URL {url!r} needs a file path (sqlite:///conveyor.db): workers in other "
            "processes must see the same jobs"
        )
    options = {k: v[-1] for k, v in parse_qs(query).items()}
    return path, options


class SQLiteBackend(SQLiteBatches, Backend):
    schemes = ("sqlite",)
    capabilities = Capabilities(
        transactional_enqueue=True, native_notify=False, shared_across_hosts=False, batches=True
    )

    def __init__(self, url: str, *, table_prefix: str = "") -> None:
        super().__init__(url, table_prefix=table_prefix)
        self.path, options = parse_sqlite_url(url)
        sync = options.get("synchronous", "normal").lower()
        if sync not in _SYNC_MODES:
            raise ConfigurationError(
                f"SQLite URL option synchronous={sync!r}: accepted values are "
                + ", ".join(_SYNC_MODES)
            )
        self.synchronous = sync
        try:
            self.busy_timeout_ms = int(options.get("busy_timeout", "10000"))
        except ValueError:
            raise ConfigurationError(
                "SQLite URL option busy_timeout must be a number of milliseconds") from None
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._migrated = False
        self._local = threading.local()
        p = table_prefix
        self.t_jobs, self.t_failed = f"{p}jobs", f"{p}failed_jobs"
        self.t_control, self.t_queues, self.t_workers = f"{p}control", f"{p}queue_control", \
            f"{p}workers"

    # -- connections -----------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        directory = Path(self.path).parent
        if not directory.exists():
            raise StoreUnavailable(
                f"SQLite store {self.path!r}: directory {str(directory)!r} does not exist"
            )
        try:
            # created private (0600) before SQLite opens it: its -wal and -shm files take the
            # same mode, and no other user can open it in between
            os.close(os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            pass
        except OSError as exc:
            raise StoreUnavailable(f"cannot create SQLite store {self.path!r}: {exc}") from exc
        try:
            conn = sqlite3.connect(
                self.path, timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                check_same_thread=False,
            )
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout_ms)}")
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute(f"PRAGMA synchronous = {self.synchronous.upper()}")
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite store {self.path!r}: {exc}") from exc
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """The process's writer connection; reopened after ``fork()``, never carried across."""
        pid = os.getpid()
        if self._conn is None or self._pid != pid:
            self._conn = self._connect()
            self._pid = pid
            if not self._migrated:
                self._migrate_locked(self._conn)
                self._migrated = True
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction on the writer connection."""
        with self._lock:
            conn = self.conn
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreUnavailable(f"SQLite store {self.path!r} is locked: {exc}") from exc
            try:
                yield conn
            except sqlite3.Error as exc:
                conn.execute("ROLLBACK")
                raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            else:
                conn.execute("COMMIT")

    def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        with self._lock:
            try:
                return fn(self.conn)
            except sqlite3.Error as exc:
                raise StoreError(f"SQLite store {self.path!r}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
        waiter = getattr(self._local, "waiter", None)
        if waiter is not None:
            waiter.close()
            self._local.waiter = None

    def ping(self) -> None:
        self._read(lambda c: c.execute("SELECT 1").fetchone())

    # -- schema ----------------------------------------------------------------------
    def migrate(self) -> list[str]:
        with self._lock:
            return self._migrate_locked(self.conn)

    def _migrate_locked(self, conn: sqlite3.Connection) -> list[str]:
        applied: list[str] = []
        conn.execute("BEGIN IMMEDIATE")
        try:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {self.table_prefix}conveyor_migrations "
                "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at REAL NOT NULL)"
            )
            done = {row[0] for row in conn.execute(
                f"SELECT version FROM {self.table_prefix}conveyor_migrations")}
            for migration in load_migrations(__package__ or "", self.table_prefix):
                if migration.version in done:
                    continue
                for statement in migration.statements:
                    conn.execute(statement)
                conn.execute(
                    f"INSERT INTO {self.table_prefix}conveyor_migrations VALUES (?, ?, ?)",
                    (migration.version, migration.name, time.time()),
                )
                applied.append(f"{migration.version:04d}_{migration.name}")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return applied

    # -- jobs ------------------------------------------------------------------------
    def jobs_insert(self, records: Sequence[NewJob], *, connection: Any = None) -> None:
        if connection is not None:
            # the caller's own sqlite3 connection and transaction
            self._insert_jobs(connection, records)
            return
        with self._write() as conn:
            self._insert_jobs(conn, records)

    def _insert_jobs(self, conn: sqlite3.Connection, records: Sequence[NewJob]) -> None:
        conn.executemany(
            f"INSERT INTO {self.t_jobs} (id, queue, name, payload, max_tries, available_at, "
            "created_at, batch_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.id, r.queue, r.name, r.payload, r.max_tries, r.available_at, r.created_at,
              r.batch_id) for r in records])

    def jobs_reserve(
        self, queues: Sequence[str], limit: int, lease: float, worker: str, now: float
    ) -> list[ReservedJob]:
        if limit <= 0 or not queues:
            return []
        with self._write() as conn:
            return self._reserve_in(conn, queues, limit, lease, worker, now)

    def jobs_ack_and_reserve(
        self, completes: Sequence[Lease], releases: Sequence[Release],
        failures: Sequence[Failure], queues: Sequence[str], limit: int, lease: float,
        worker: str, now: float,
    ) -> list[ReservedJob]:
        """One ``BEGIN IMMEDIATE`` transaction for the worker's whole round trip."""
        with self._write() as conn:
            self._complete_in(conn, completes)
            self._release_in(conn, releases)
            for item in failures:
                self._move_to_failed(conn, item.id, item.token, item.exception, item.failed_at)
            if limit <= 0 or not queues:
                return []
            return self._reserve_in(conn, queues, limit, lease, worker, now)

    def _reserve_in(self, conn: sqlite3.Connection, queues: Sequence[str], limit: int,
                    lease: float, worker: str, now: float) -> list[ReservedJob]:
        token = os.urandom(8).hex()
        expires = now + lease
        reserved: list[ReservedJob] = []
        paused = {row[0] for row in conn.execute(
            f"SELECT queue FROM {self.t_queues} WHERE paused = 1")}
        for queue in queues:
            if queue in paused:
                continue
            want = limit - len(reserved)
            rows = conn.execute(
                f"UPDATE {self.t_jobs} SET reserved_at = ?, attempts = attempts + 1, "
                "token = ?, worker = ?, lease_expires_at = ? WHERE id IN ("
                f"SELECT id FROM {self.t_jobs} WHERE queue = ? AND reserved_at IS NULL "
                "AND available_at <= ? ORDER BY available_at LIMIT ?) "
                f"RETURNING {_RESERVE_COLUMNS}",
                (now, token, worker, expires, queue, now, want),
            ).fetchall()
            rows.sort(key=lambda r: r[6])
            for row in rows:
                reserved.append(ReservedJob(
                    id=row[0], queue=row[1], name=row[2], payload=row[3], attempts=row[4],
                    max_tries=row[5], token=token, available_at=row[6], created_at=row[7],
                    reserved_at=now, lease_expires_at=expires, batch_id=row[8],
                ))
            if len(reserved) >= limit:
                break
        return reserved

    def jobs_complete(self, leases: Sequence[Lease]) -> int:
        if not leases:
            return 0
        with self._write() as conn:
            return self._complete_in(conn, leases)

    def _complete_in(self, conn: sqlite3.Connection, leases: Sequence[Lease]) -> int:
        if not leases:
            return 0
        return conn.executemany(
            f"DELETE FROM {self.t_jobs} WHERE id = ? AND token = ?",
            [(lease.id, lease.token) for lease in leases],
        ).rowcount

    def jobs_release(self, items: Sequence[Release]) -> int:
        if not items:
            return 0
        with self._write() as conn:
            return self._release_in(conn, items)

    def _release_in(self, conn: sqlite3.Connection, items: Sequence[Release]) -> int:
        if not items:
            return 0
        return conn.executemany(
            f"UPDATE {self.t_jobs} SET reserved_at = NULL, token = NULL, worker = NULL, "
            "lease_expires_at = NULL, available_at = ? WHERE id = ? AND token = ?",
            [(item.available_at, item.id, item.token) for item in items],
        ).rowcount

    def jobs_fail(self, items: Sequence[Failure]) -> int:
        if not items:
            return 0
        moved = 0
        with self._write() as conn:
            for item in items:
                moved += self._move_to_failed(conn, item.id, item.token, item.exception,
                                              item.failed_at)
        return moved

    def _move_to_failed(self, conn: sqlite3.Connection, job_id: str, token: str | None,
                        exception: str, failed_at: float) -> int:
        if token is None:
            row = conn.execute(
                f"DELETE FROM {self.t_jobs} WHERE id = ? RETURNING queue, name, payload, "
                "attempts, max_tries, batch_id", (job_id,)).fetchone()
        else:
            row = conn.execute(
                f"DELETE FROM {self.t_jobs} WHERE id = ? AND token = ? RETURNING queue, name, "
                "payload, attempts, max_tries, batch_id", (job_id, token)).fetchone()
        if row is None:
            return 0
        conn.execute(
            f"INSERT OR REPLACE INTO {self.t_failed} (uuid, connection, queue, name, payload, "
            "exception, failed_at, attempts, max_tries, batch_id) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (job_id, self.display_url, row[0], row[1], row[2], exception, failed_at, row[3],
             row[4], row[5]),
        )
        return 1

    def jobs_extend_lease(self, leases: Sequence[Lease], lease: float, now: float) -> list[str]:
        if not leases:
            return []
        held: list[str] = []
        with self._write() as conn:
            for item in leases:
                cur = conn.execute(
                    f"UPDATE {self.t_jobs} SET lease_expires_at = ? WHERE id = ? AND token = ?",
                    (now + lease, item.id, item.token),
                )
                if cur.rowcount:
                    held.append(item.id)
        return held

    def jobs_recover_expired(
        self, now: float, default_tries: int, limit: int = 1000
    ) -> RecoveryResult:
        result = RecoveryResult()
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT id, attempts, max_tries, worker, lease_expires_at FROM {self.t_jobs} "
                "WHERE reserved_at IS NOT NULL AND lease_expires_at < ? LIMIT ?",
                (now, limit),
            ).fetchall()
            for job_id, attempts, max_tries, worker, expired_at in rows:
                tries = max_tries if max_tries is not None else default_tries
                if attempts >= tries:
                    reason = (
                        f"conveyor.errors.WorkerLost: worker lost: the lease of worker {worker} "
                        f"expired at {expired_at:.3f} during attempt {attempts} of {tries}"
                    )
                    self._move_to_failed(conn, job_id, None, reason, now)
                    result.failed.append(job_id)
                else:
                    conn.execute(
                        f"UPDATE {self.t_jobs} SET reserved_at = NULL, token = NULL, "
                        "worker = NULL, lease_expires_at = NULL, available_at = ? WHERE id = ?",
                        (now, job_id),
                    )
                    result.released.append(job_id)
        return result

    def jobs_get(self, job_id: str) -> ReservedJob | None:
        def fetch(conn: sqlite3.Connection) -> ReservedJob | None:
            row = conn.execute(
                f"SELECT {_RESERVE_COLUMNS}, token, reserved_at, lease_expires_at "
                f"FROM {self.t_jobs} WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                return None
            return ReservedJob(
                id=row[0], queue=row[1], name=row[2], payload=row[3], attempts=row[4],
                max_tries=row[5], available_at=row[6], created_at=row[7], batch_id=row[8],
                token=row[9] or "", reserved_at=row[10] or 0.0, lease_expires_at=row[11] or 0.0,
            )
        return self._read(fetch)

    # -- failed store ------------------------------------------------------------------
    _FAILED_COLUMNS = "uuid, connection, queue, name, payload, exception, failed_at, attempts"

    @staticmethod
    def _failed(row: Sequence[Any]) -> FailedRecord:
        return FailedRecord(id=row[0], connection=row[1], queue=row[2], name=row[3],
                            payload=row[4], exception=row[5], failed_at=row[6], attempts=row[7])

    def failed_list(
        self, queue: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[FailedRecord]:
        where, params = ("WHERE queue = ?", [queue]) if queue else ("", [])
        return self._read(lambda c: [self._failed(r) for r in c.execute(
            f"SELECT {self._FAILED_COLUMNS} FROM {self.t_failed} {where} "
            "ORDER BY failed_at DESC, id DESC LIMIT ? OFFSET ?", (*params, limit, offset))])

    def failed_get(self, job_id: str) -> FailedRecord | None:
        def fetch(c: sqlite3.Connection) -> FailedRecord | None:
            row = c.execute(f"SELECT {self._FAILED_COLUMNS} FROM {self.t_failed} "
                            "WHERE uuid = ?", (job_id,)).fetchone()
            return None if row is None else self._failed(row)
        return self._read(fetch)

    def failed_retry(
        self, ids: Iterable[str] | None, now: float, queue: str | None = None
    ) -> list[str]:
        with self._write() as conn:
            if ids is None:
                where, params = ("WHERE queue = ?", [queue]) if queue else ("", [])
                wanted = [r[0] for r in conn.execute(
                    f"SELECT uuid FROM {self.t_failed} {where} ORDER BY id", params)]
            else:
                wanted = list(dict.fromkeys(ids))
            retried: list[str] = []
            for job_id in wanted:
                row = conn.execute(
                    f"DELETE FROM {self.t_failed} WHERE uuid = ? "
                    + ("AND queue = ? " if queue else "")
                    + "RETURNING queue, name, payload, max_tries, batch_id",
                    (job_id, queue) if queue else (job_id,),
                ).fetchone()
                if row is None:
                    continue
                conn.execute(
                    f"INSERT OR REPLACE INTO {self.t_jobs} (id, queue, name, payload, attempts, "
                    "max_tries, available_at, created_at, batch_id) "
                    "VALUES (?, ?, ?, ?, 0, ?, ?, ?, ?)",
                    (job_id, row[0], row[1], row[2], row[3], now, now, row[4]),
                )
                retried.append(job_id)
        return retried

    def failed_forget(self, job_id: str) -> bool:
        with self._write() as conn:
            return conn.execute(f"DELETE FROM {self.t_failed} WHERE uuid = ?",
                                (job_id,)).rowcount > 0

    def failed_flush(self, older_than: float | None = None) -> int:
        with self._write() as conn:
            if older_than is None:
                return conn.execute(f"DELETE FROM {self.t_failed}").rowcount
            return conn.execute(f"DELETE FROM {self.t_failed} WHERE failed_at < ?",
                                (older_than,)).rowcount

    # -- control -----------------------------------------------------------------------
    def queue_pause(self, queue: str) -> None:
        with self._write() as conn:
            conn.execute(f"INSERT INTO {self.t_queues} (queue, paused) VALUES (?, 1) "
                         "ON CONFLICT (queue) DO UPDATE SET paused = 1", (queue,))

    def queue_resume(self, queue: str) -> None:
        with self._write() as conn:
            conn.execute(f"DELETE FROM {self.t_queues} WHERE queue = ?", (queue,))

    def queues_paused(self) -> set[str]:
        return self._read(lambda c: {r[0] for r in c.execute(
            f"SELECT queue FROM {self.t_queues} WHERE paused = 1")})

    def queue_clear(self, queues: Sequence[str]) -> int:
        total = 0
        with self._write() as conn:
            for queue in queues:
                total += conn.execute(
                    f"DELETE FROM {self.t_jobs} WHERE queue = ? AND reserved_at IS NULL",
                    (queue,)).rowcount
        return total

    def _control_set(self, key: str, value: str) -> None:
        with self._write() as conn:
            conn.execute(f"INSERT INTO {self.t_control} (key, value) VALUES (?, ?) "
                         "ON CONFLICT (key) DO UPDATE SET value = excluded.value", (key, value))

    def _control_get(self, key: str) -> str | None:
        row = self._read(lambda c: c.execute(
            f"SELECT value FROM {self.t_control} WHERE key = ?", (key,)).fetchone())
        return None if row is None else str(row[0])

    def restart_signal_write(self, stamp: float) -> None:
        self._control_set("restart", repr(stamp))

    def restart_signal_read(self) -> float | None:
        value = self._control_get("restart")
        return None if value is None else float(value)

    def worker_register(self, worker: WorkerInfo) -> None:
        self.worker_heartbeat(worker)

    def worker_heartbeat(self, worker: WorkerInfo) -> None:
        with self._write() as conn:
            conn.execute(
                f"INSERT INTO {self.t_workers} (name, data, last_heartbeat) VALUES (?, ?, ?) "
                "ON CONFLICT (name) DO UPDATE SET data = excluded.data, "
                "last_heartbeat = excluded.last_heartbeat",
                (worker.name, json.dumps(worker.to_dict()), worker.last_heartbeat),
            )

    def worker_list(self) -> list[WorkerInfo]:
        rows = self._read(lambda c: c.execute(
            f"SELECT data FROM {self.t_workers} ORDER BY name").fetchall())
        return [WorkerInfo.from_dict(json.loads(r[0])) for r in rows]

    def worker_remove(self, name: str) -> None:
        with self._write() as conn:
            conn.execute(f"DELETE FROM {self.t_workers} WHERE name = ?", (name,))

    # -- monitoring ----------------------------------------------------------------------
    def queue_stats(self, now: float) -> list[QueueStats]:
        def fetch(c: sqlite3.Connection) -> list[QueueStats]:
            stats: dict[str, QueueStats] = {}
            for queue, available, scheduled, running, oldest in c.execute(
                "SELECT queue, "
                "SUM(reserved_at IS NULL AND available_at <= ?), "
                "SUM(reserved_at IS NULL AND available_at > ?), "
                "SUM(reserved_at IS NOT NULL), "
                "MIN(CASE WHEN reserved_at IS NULL AND available_at <= ? THEN available_at END) "
                f"FROM {self.t_jobs} GROUP BY queue", (now, now, now)):
                stats[queue] = QueueStats(queue, int(available), int(scheduled), int(running),
                                          0, oldest)
            for queue, failed in c.execute(
                    f"SELECT queue, COUNT(*) FROM {self.t_failed} GROUP BY queue"):
                stats.setdefault(queue, QueueStats(queue)).failed = int(failed)
            for (queue,) in c.execute(f"SELECT queue FROM {self.t_queues} WHERE paused = 1"):
                stats.setdefault(queue, QueueStats(queue)).paused = True
            return [stats[q] for q in sorted(stats)]
        return self._read(fetch)

    _METRIC_COLUMNS = ("minute, queue, name, worker, processed, failed, released, timed_out, "
                       "runtime_sum, runtime_max, wait_sum, wait_max, histogram")

    def metrics_record(self, samples: Sequence[MetricSample]) -> None:
        if not samples:
            return
        with self._write() as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO {self.table_prefix}metrics ({self._METRIC_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(s.minute, s.queue, s.name, s.worker, s.processed, s.failed, s.released,
                  s.timed_out, s.runtime_sum, s.runtime_max, s.wait_sum, s.wait_max,
                  json.dumps(s.histogram)) for s in samples],
            )

    def metrics_read(self, since: float, until: float | None = None) -> list[MetricSample]:
        rows = self._read(lambda c: c.execute(
            f"SELECT {self._METRIC_COLUMNS} FROM {self.table_prefix}metrics "
            "WHERE minute >= ? AND minute < ? ORDER BY minute, queue, name, worker",
            (since, until if until is not None else 1e18)).fetchall())
        return [MetricSample(int(r[0]), r[1], r[2], r[3], int(r[4]), int(r[5]), int(r[6]),
                             int(r[7]), float(r[8]), float(r[9]), float(r[10]), float(r[11]),
                             [int(v) for v in json.loads(r[12])]) for r in rows]

    def metrics_prune(self, older_than: float) -> int:
        with self._write() as conn:
            return conn.execute(f"DELETE FROM {self.table_prefix}metrics WHERE minute < ?",
                                (older_than,)).rowcount

    # -- waiting -------------------------------------------------------------------------
    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> bool:
        """Poll ``PRAGMA data_version`` every 2 ms: cheap, and it moves on any commit."""
        waiter: sqlite3.Connection | None = getattr(self._local, "waiter", None)
        if waiter is None or getattr(self._local, "pid", None) != os.getpid():
            waiter = self._connect()
            self._local.waiter = waiter
            self._local.pid = os.getpid()
            self._local.version = waiter.execute("PRAGMA data_version").fetchone()[0]
            # a commit made before this first look is invisible to data_version: report a
            # wake-up so the caller reserves once instead of missing it until the timeout
            return True
        deadline = time.monotonic() + timeout
        while True:
            version = waiter.execute("PRAGMA data_version").fetchone()[0]
            if version != self._local.version:
                self._local.version = version
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(_POLL_INTERVAL, remaining))
