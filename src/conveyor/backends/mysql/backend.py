"""MySQL / MariaDB store: claims by ``SELECT … FOR UPDATE SKIP LOCKED`` + ``UPDATE … WHERE
id IN (…)`` in one short READ COMMITTED transaction; acks batched and token-checked;
wake-ups by an adaptive poll of the ready index (MySQL has no LISTEN/NOTIFY).

The public job id is ``jobs.uuid``; ``jobs.id`` stays the seed's ``BIGINT UNSIGNED
AUTO_INCREMENT`` key, so new rows append to the clustered index and the claim's order
(``available_at``, then insertion) comes straight off ``jobs_queue_index``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Sequence
from typing import Any

import pymysql
from pymysql.cursors import Cursor

from ...errors import ConfigurationError, StoreError
from ...records import Failure, Lease, NewJob, RecoveryResult, Release, ReservedJob
from ..base import Backend, Capabilities
from ..migrations import load_migrations
from .admin import AdminMixin
from .batches import MySQLBatches
from .options import parse_mysql_url
from .pool import CommitUnknown, Pool
from .sql import chunks, expand, load_queries

_MIGRATE_LOCK_SECONDS = 60


class MySQLBackend(MySQLBatches, AdminMixin, Backend):
    schemes = ("mysql", "mariadb")
    capabilities = Capabilities(transactional_enqueue=True, native_notify=False,
                                shared_across_hosts=True, batches=True)

    def __init__(self, url: str, *, table_prefix: str = "") -> None:
        super().__init__(url, table_prefix=table_prefix)
        if table_prefix and not table_prefix.replace("_", "").isalnum():
            raise ConfigurationError(
                f"table prefix {table_prefix!r} is not valid: letters, digits and _ only")
        self.options = parse_mysql_url(url)
        self.pool = Pool(self.options)
        # table names are qualified with the URL's database, so a caller's connection
        # (transactional enqueue) reaches conveyor's tables whatever database it uses
        self.qualified_prefix = f"`{self.options.database}`.{table_prefix}"
        self.q = load_queries(self.qualified_prefix)
        self.connection_name = self.options.connection_name(url.split("://", 1)[0].lower())
        self._local = threading.local()
        # tokens of claims whose COMMIT reply was lost (see _adopt)
        self._unknown_claims: list[str] = []
        self._unknown_lock = threading.Lock()

    @property
    def retries(self) -> dict[str, int]:
        """Transparent retries so far: deadlock victims, lock wait timeouts, reconnects."""
        return dict(self.pool.retries)

    # -- lifecycle ---------------------------------------------------------------------
    def close(self) -> None:
        self.pool.close()

    def ping(self) -> None:
        self.pool.run(lambda cur: cur.execute("SELECT 1"), what="ping", transaction=False)

    def migrate(self) -> list[str]:
        """Apply missing migrations under a named lock: two ``conveyor migrate`` at once
        take turns, and the second finds nothing left to do."""
        key = f"conveyor:migrate:{self.options.database}.{self.table_prefix}"
        lock = key if len(key) <= 64 else "conveyor:migrate:" + hashlib.sha1(
            key.encode()).hexdigest()

        def work(cur: Cursor) -> list[str]:
            cur.execute("SELECT GET_LOCK(%s, %s)", (lock, _MIGRATE_LOCK_SECONDS))
            row = cur.fetchone()
            if row is None or row[0] != 1:
                raise StoreError(
                    f"MySQL store {self.options.where}: another `conveyor migrate` held the "
                    f"lock {lock!r} for {_MIGRATE_LOCK_SECONDS}s; try again when it is done")
            try:
                return self._migrate_locked(cur)
            finally:
                # if the session is gone, its lock went with it
                with contextlib.suppress(pymysql.err.MySQLError):
                    cur.execute("SELECT RELEASE_LOCK(%s)", (lock,))

        return self.pool.run(work, what="migrate", transaction=False)

    def _migrate_locked(self, cur: Cursor) -> list[str]:
        cur.execute(self.q["migrations_table"])
        cur.execute(self.q["migrations_done"])
        done = {int(row[0]) for row in cur.fetchall()}
        applied: list[str] = []
        for migration in load_migrations(__package__ or "", self.qualified_prefix):
            if migration.version in done:
                continue
            # MySQL commits DDL at once; every statement is IF NOT EXISTS so a migration
            # cut short is simply run again
            for statement in migration.statements:
                cur.execute(statement)
            cur.execute(self.q["migrations_record"],
                        (migration.version, migration.name, time.time()))
            applied.append(f"{migration.version:04d}_{migration.name}")
        return applied

    # -- jobs ----------------------------------------------------------------------------
    def jobs_insert(self, records: Sequence[NewJob], *, connection: Any = None) -> None:
        if not records:
            return
        rows = [(r.id, r.queue, r.name, r.payload, r.max_tries, r.available_at, r.created_at,
                 r.batch_id) for r in records]
        sql = self.q["jobs_insert"]
        if connection is not None:
            # the caller's own DB-API connection: inside its transaction, committed (or
            # rolled back) by the caller
            try:
                with connection.cursor() as cur:
                    cur.executemany(sql, rows)
            except pymysql.err.MySQLError as exc:
                raise self.pool.translate(exc, "insert") from exc
            return
        self.pool.run(lambda cur: cur.executemany(sql, rows), what="insert", idempotent=False)

    def jobs_reserve(
        self, queues: Sequence[str], limit: int, lease: float, worker: str, now: float
    ) -> list[ReservedJob]:
        if limit <= 0 or not queues:
            return []
        adopted = self._adopt(limit, lease, now) if self._unknown_claims else []
        if len(adopted) >= limit:
            return adopted
        limit -= len(adopted)
        order = list(dict.fromkeys(queues))
        probe = expand(self.q["ready_queues"], queues=len(order))
        probe_args = [v for pos, queue in enumerate(order) for v in (pos, queue)]

        def find(cur: Cursor) -> list[str]:
            cur.execute(probe, (*probe_args, now))
            return [str(row[0]) for row in cur.fetchall()]

        # a lock-free look first: an idle worker costs one indexed read, no transaction
        ready = self.pool.run(find, what="reserve", transaction=False)
        if not ready:
            return adopted
        token = os.urandom(8).hex()
        expires = now + lease

        def claim(cur: Cursor) -> list[tuple[Any, ...]]:
            rows: list[tuple[Any, ...]] = []
            for queue in ready:  # strict order: a lower queue only fills what is left
                cur.execute(self.q["claim_select"], (queue, now, limit - len(rows)))
                rows.extend(cur.fetchall())
                if len(rows) >= limit:
                    break
            if rows:
                cur.execute(expand(self.q["claim_update"], ids=len(rows)),
                            (now, token, worker, expires, *[row[0] for row in rows]))
            return rows

        try:
            rows = self.pool.run(claim, what="reserve", idempotent=False)
        except CommitUnknown:
            with self._unknown_lock:
                self._unknown_claims.append(token)
            raise
        return adopted + [
            ReservedJob(id=r[1], queue=r[2], name=r[3], payload=r[4], attempts=int(r[5]) + 1,
                        max_tries=r[6], token=token, available_at=r[7], created_at=r[8],
                        reserved_at=now, lease_expires_at=expires, batch_id=r[9])
            for r in rows]

    def _adopt(self, limit: int, lease: float, now: float) -> list[ReservedJob]:
        """Take back the jobs of claims whose COMMIT reply was lost (the server went away
        mid-commit): if the claim did commit, its token marks rows nobody else may take,
        which would otherwise wait a whole lease before anyone ran them."""
        with self._unknown_lock:
            tokens = list(self._unknown_claims)
        # taken-back rows get a token of their own, so the old one marks only what is left
        token = os.urandom(8).hex()

        def work(cur: Cursor) -> list[tuple[Any, ...]]:
            cur.execute(expand(self.q["claimed_by_tokens"], ids=len(tokens)), (*tokens, limit))
            rows = list(cur.fetchall())
            if rows:
                cur.execute(expand(self.q["jobs_retoken"], ids=len(rows)),
                            (token, now + lease, *[row[0] for row in rows]))
            return rows

        rows = self.pool.run(work, what="reserve")
        if len(rows) < limit:  # every row of these tokens is taken back: forget them
            with self._unknown_lock:
                self._unknown_claims = [t for t in self._unknown_claims if t not in tokens]
        return [ReservedJob(id=r[1], queue=r[2], name=r[3], payload=r[4], attempts=int(r[5]),
                            max_tries=r[6], token=token, available_at=r[7], created_at=r[8],
                            reserved_at=r[11], lease_expires_at=now + lease, batch_id=r[9])
                for r in rows]

    @staticmethod
    def _lease_args(part: Sequence[Lease]) -> list[str]:
        return [lease.id for lease in part] + [v for lease in part for v in (lease.id, lease.token)]

    def jobs_complete(self, leases: Sequence[Lease]) -> int:
        if not leases:
            return 0
        parts = chunks(leases)

        def work(cur: Cursor) -> int:
            return sum(cur.execute(expand(self.q["jobs_complete"], ids=len(p), pairs=len(p)),
                                   self._lease_args(p)) for p in parts)

        # one DELETE is atomic by itself: no BEGIN/COMMIT round trips for a usual batch
        return self.pool.run(work, what="complete", transaction=len(parts) > 1)

    def jobs_release(self, items: Sequence[Release]) -> int:
        if not items:
            return 0
        sql = self.q["jobs_release"]

        def work(cur: Cursor) -> int:
            return sum(cur.execute(sql, (i.available_at, i.id, i.token)) for i in items)

        return self.pool.run(work, what="release", transaction=len(items) > 1)

    def jobs_fail(self, items: Sequence[Failure]) -> int:
        if not items:
            return 0
        by_id = {item.id: item for item in items}
        parts = chunks([Lease(i.id, i.token) for i in by_id.values()])

        def work(cur: Cursor) -> int:
            moved = 0
            for part in parts:
                cur.execute(expand(self.q["jobs_for_failure"], ids=len(part), pairs=len(part)),
                            self._lease_args(part))
                rows = list(cur.fetchall())
                moved += self._move_to_failed(cur, rows, {
                    row[1]: (by_id[row[1]].exception, by_id[row[1]].failed_at) for row in rows})
            return moved

        return self.pool.run(work, what="fail")

    def _move_to_failed(self, cur: Cursor, rows: list[tuple[Any, ...]],
                        reasons: dict[str, tuple[str, float]]) -> int:
        """Rows ``(id, uuid, queue, name, payload, attempts, max_tries, batch_id)``, locked."""
        if not rows:
            return 0
        cur.executemany(self.q["failed_insert"], [
            (r[1], self.connection_name, r[2], r[3], r[4], *reasons[r[1]], r[5], r[6], r[7])
            for r in rows])
        cur.execute(expand(self.q["jobs_delete_ids"], ids=len(rows)), [r[0] for r in rows])
        return len(rows)

    def jobs_extend_lease(self, leases: Sequence[Lease], lease: float, now: float) -> list[str]:
        if not leases:
            return []
        parts = chunks(leases)

        def work(cur: Cursor) -> set[str]:
            held: set[str] = set()
            for part in parts:
                cur.execute(expand(self.q["jobs_held"], ids=len(part), pairs=len(part)),
                            self._lease_args(part))
                rows = cur.fetchall()
                if rows:
                    cur.execute(expand(self.q["jobs_extend"], ids=len(rows)),
                                (now + lease, *[row[0] for row in rows]))
                    held.update(str(row[1]) for row in rows)
            return held

        held = self.pool.run(work, what="extend leases")
        return [item.id for item in leases if item.id in held]

    def jobs_recover_expired(
        self, now: float, default_tries: int, limit: int = 1000
    ) -> RecoveryResult:
        def work(cur: Cursor) -> RecoveryResult:
            result = RecoveryResult()
            cur.execute(self.q["jobs_expired"], (now, limit))
            back: list[int] = []
            reasons: dict[str, tuple[str, float]] = {}
            lost: list[int] = []
            for row_id, uuid, attempts, max_tries, worker, expired_at in cur.fetchall():
                tries = max_tries if max_tries is not None else default_tries
                if attempts >= tries:
                    lost.append(row_id)
                    reasons[uuid] = (
                        f"conveyor.errors.WorkerLost: worker lost: the lease of worker {worker} "
                        f"expired at {expired_at:.3f} during attempt {attempts} of {tries}", now)
                    result.failed.append(uuid)
                else:
                    back.append(row_id)
                    result.released.append(uuid)
            if back:
                cur.execute(expand(self.q["jobs_put_back"], ids=len(back)), (now, *back))
            if lost:
                cur.execute(expand(self.q["jobs_for_failure_any_token"], ids=len(lost)), lost)
                self._move_to_failed(cur, list(cur.fetchall()), reasons)
            return result

        return self.pool.run(work, what="recover expired leases")

    def jobs_get(self, job_id: str) -> ReservedJob | None:
        def fetch(cur: Cursor) -> tuple[Any, ...] | None:
            cur.execute(self.q["jobs_get"], (job_id,))
            row: tuple[Any, ...] | None = cur.fetchone()
            return row

        r = self.pool.run(fetch, what="get job", transaction=False)
        if r is None:
            return None
        return ReservedJob(id=r[1], queue=r[2], name=r[3], payload=r[4], attempts=r[5],
                           max_tries=r[6], available_at=r[7], created_at=r[8], batch_id=r[9],
                           token=r[10] or "", reserved_at=r[11] or 0.0,
                           lease_expires_at=r[12] or 0.0)

    # -- waiting --------------------------------------------------------------------------
    def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> bool:
        """Poll a cheap probe every few ms after activity, backing off to ``poll_max`` while
        idle. True when a job was inserted since the last look (the newest id moved: any
        queue, as SQLite's data_version) or when one of ``queues`` got a due job (a
        scheduled or released one coming due). The worker then reserves to find out.

        "Due" is judged by this host's clock: it is only a hint, never a decision."""
        if not queues:
            time.sleep(max(0.0, timeout))
            return False
        opts = self.options
        state = self._local
        if getattr(state, "pid", None) != os.getpid():
            state.pid, state.newest, state.ready = os.getpid(), None, False
            state.interval = opts.poll_min
        sql = expand(self.q["wake_probe"], ids=len(queues))
        deadline = time.monotonic() + timeout

        def probe(cur: Cursor) -> tuple[int, bool]:
            cur.execute(sql, (*queues, time.time()))
            row = cur.fetchone()
            return (0, False) if row is None else (int(row[0] or 0), bool(row[1]))

        while True:
            newest, ready = self.pool.run(probe, what="wait for jobs", transaction=False)
            inserted = state.newest is not None and newest > state.newest
            woken = inserted or (ready and not state.ready)
            state.newest, state.ready = newest, ready
            state.interval = opts.poll_min if inserted else min(opts.poll_max,
                                                                state.interval * 1.5)
            if woken:
                return True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            time.sleep(min(state.interval, remaining))
