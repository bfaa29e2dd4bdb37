"""The worker's round on PostgreSQL is one round trip: its finished attempts' acks and its
next claim travel as one statement. Round trips are counted from libpq's own protocol
trace of every pooled connection (one Sync message per round trip outside pipeline mode),
attributed to the thread that had the connection checked out."""

from __future__ import annotations

import tempfile
import threading
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any

import psycopg
import pytest
from psycopg import pq

from conveyor import Conveyor
from conveyor.backends import open_backend
from conveyor.records import Failure, Lease, NewJob, Release
from conveyor.worker.options import WorkerOptions
from conveyor.worker.policy import WorkerDefaults
from conveyor.worker.runner import Worker

from .store_postgres import PG_BASE, postgres_schema

T0 = 1_900_000_000.0


class RoundTrips:
    """Counts, per thread, the round trips made through a PostgreSQL backend's pool."""

    def __init__(self, backend: Any) -> None:
        self.by_thread: Counter[int] = Counter()
        self._traces: dict[int, tuple[IO[bytes], list[int]]] = {}
        pool = backend.pool
        configure, connection = pool._configure, pool.connection

        def traced(conn: psycopg.Connection[Any]) -> None:
            configure(conn)
            trace = tempfile.TemporaryFile()  # noqa: SIM115 - open as long as the connection
            conn.pgconn.trace(trace.fileno())
            conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
            self._traces[id(conn)] = (trace, [0])

        @contextmanager
        def counted() -> Iterator[psycopg.Connection[Any]]:
            with connection() as conn:
                self._sent(conn)  # anything before this checkout is nobody's
                try:
                    yield conn
                finally:
                    self.by_thread[threading.get_ident()] += self._sent(conn)

        pool._configure, pool.connection = traced, counted

    def _sent(self, conn: psycopg.Connection[Any]) -> int:
        """Sync (or simple Query) messages sent on ``conn`` since the last look."""
        trace, offset = self._traces[id(conn)]
        trace.seek(offset[0])
        text = trace.read()
        offset[0] += len(text)
        return sum(1 for line in text.decode().splitlines()
                   if line.split("\t")[0] == "F" and line.split("\t")[2] in ("Sync", "Query"))

    def mine(self) -> int:
        return self.by_thread[threading.get_ident()]


def _job(n: int, queue: str = "default") -> NewJob:
    return NewJob(id=f"job-{n:03d}", queue=queue, name="app.job", payload="{}",
                  available_at=T0, created_at=T0, max_tries=3)


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_schema() as (schema_url, _schema):
        yield schema_url


def test_acks_and_claim_are_one_round_trip(url: str) -> None:
    backend: Any = open_backend(url, table_prefix="rt_")
    trips = RoundTrips(backend)
    try:
        backend.migrate()
        backend.jobs_insert([_job(n) for n in range(40)])
        listener = psycopg.connect(PG_BASE, autocommit=True)
        listener.execute(f"LISTEN {backend.channel}")
        now = T0 + 1
        held = backend.jobs_reserve(["default"], 3, 30.0, "w", now)
        counts: list[int] = []
        for _ in range(8):  # past psycopg's prepare threshold (5 executions)
            done, retry, failed = held
            before = trips.mine()
            held = backend.jobs_ack_and_reserve(
                [Lease(done.id, done.token)], [Release(retry.id, retry.token, now)],
                [Failure(failed.id, failed.token, "boom", now)], ["other", "default"], 3,
                30.0, "w", now)
            counts.append(trips.mine() - before)
            assert len(held) == 3 and retry.id not in {j.id for j in held}
            assert backend.jobs_get(done.id) is None
            assert backend.jobs_get(retry.id).token == ""  # waiting again, not claimed
            assert backend.failed_get(failed.id).exception == "boom"
            # the immediate retry woke idle workers: one NOTIFY for its queue
            assert [n.payload for n in listener.notifies(timeout=5.0, stop_after=1)] == [
                "default"]
        # one round trip each; two once: when psycopg prepares the statement (on the 6th)
        assert sorted(counts) == [1] * 7 + [2], counts
        # the usual round, completes only, takes a shorter statement: one round trip too
        counts = []
        for _ in range(8):
            before = trips.mine()
            done = held[0]
            held = backend.jobs_ack_and_reserve([Lease(done.id, done.token)], [], [],
                                                ["other", "default"], 1, 30.0, "w", now)
            counts.append(trips.mine() - before)
            assert backend.jobs_get(done.id) is None and len(held) == 1
        assert sorted(counts) == [1] * 7 + [2], counts
        stale = held[0]
        assert backend.jobs_ack_and_reserve([Lease(stale.id, "not-the-token")], [], [],
                                            ["default"], 0, 30.0, "w", now) == []
        assert backend.jobs_get(stale.id) is not None  # the fence held
        listener.close()
    finally:
        backend.close()


def test_a_worker_loop_is_one_round_trip(url: str) -> None:
    app = Conveyor(f"{url}&pool_max=1")  # one connection: psycopg prepares once
    ran: list[int] = []

    @app.job(name="noop")
    def noop(n: int) -> None:
        ran.append(n)

    backend: Any = app.backend
    trips = RoundTrips(backend)
    calls: list[int] = []
    ack_and_reserve = backend.jobs_ack_and_reserve

    def counted(*args: Any) -> Any:
        before = trips.mine()
        try:
            return ack_and_reserve(*args)
        finally:
            calls.append(trips.mine() - before)

    backend.jobs_ack_and_reserve = counted
    try:
        backend.migrate()
        jobs = 30
        app.dispatch_many([noop.prepare(n) for n in range(jobs)])
        worker = Worker(app, WorkerOptions(queues=["default"], concurrency=1,
                                           defaults=WorkerDefaults(), stop_when_empty=True,
                                           sleep=0.05))
        start = trips.mine()
        worker.run()
        loop_trips = trips.mine() - start
        assert sorted(ran) == list(range(jobs))
        # every loop: one call, one round trip (two once, when psycopg prepares it)
        # every loop: one call, one round trip; two when psycopg prepares the statement
        # (once per parameter types: empty arrays type differently)
        assert len(calls) >= jobs and set(calls) <= {1, 2}, calls
        assert calls.count(2) <= 2, calls
        # and the rest of the loop's thread is a fixed cost (start-up: ping, register,
        # recovery; stop: metrics, unregister; the restart signal each second), not one
        # per job: the separate acks-then-claim path took at least two per job
        assert loop_trips - sum(calls) <= 15, (loop_trips, calls)
    finally:
        app.backend.close()


def test_the_round_reads_indexes_only(url: str) -> None:
    backend: Any = open_backend(url)
    try:
        backend.migrate()
        backend.jobs_insert([_job(n, ("high", "low")[n % 2]) for n in range(3000)])
        params: list[Any] = [["a"], ["t"], ["b"], ["t"], [T0], ["c"], ["t"], ["e"], [T0],
                             None, "label"]
        for queue in ("high", "low"):
            params += [queue, T0, queue, 8]
        params += [8, T0, "token", "w", T0 + 30, backend.channel, T0]
        with backend.pool.connection() as conn:
            conn.execute(f"ANALYZE {backend.t['jobs']}")
            plan = "\n".join(r[0] for r in conn.execute(
                "EXPLAIN " + backend.sql.claim("ack_reserve", 2), params))
        assert plan.count("Index Scan using jobs_ready_index") == 2, plan  # one per queue
        assert plan.count("Index Scan using jobs_pkey on jobs") == 4, plan  # 3 acks, claim
        assert "Seq Scan" not in plan and "LockRows" in plan, plan
    finally:
        backend.close()
