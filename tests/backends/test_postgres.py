"""PostgreSQL-only behaviour beyond the conformance suite: concurrent migrations, the
listener and the pool surviving killed connections, the one-at-a-time recovery lock,
URL options and error messages."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import psycopg
import pytest

from conveyor.backends import open_backend
from conveyor.errors import ConfigurationError, StoreError, StoreUnavailable
from conveyor.records import NewJob

from .store_postgres import PG_BASE, postgres_schema

T0 = 1_900_000_000.0


def job(n: int, queue: str = "default") -> NewJob:
    return NewJob(id=f"job-{n}", queue=queue, name="app.job", payload="{}", available_at=T0,
                  created_at=T0, max_tries=3)


@pytest.fixture
def url() -> Iterator[str]:
    with postgres_schema() as (schema_url, _schema):
        yield f"{schema_url}&application_name=cvtest_{os.urandom(4).hex()}"


def _terminate(application_name: str) -> int:
    with psycopg.connect(PG_BASE, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE application_name = %s", (application_name,)).fetchall()
    return len(rows)


def test_two_migrations_at_once_are_safe(url: str) -> None:
    backends = [open_backend(url, table_prefix="m_") for _ in range(2)]
    barrier = threading.Barrier(2)
    results: list[list[str] | BaseException] = []

    def migrate(b: object) -> None:
        barrier.wait(10)
        try:
            results.append(b.migrate())  # type: ignore[attr-defined]
        except BaseException as exc:
            results.append(exc)

    threads = [threading.Thread(target=migrate, args=(b,)) for b in backends]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    for b in backends:
        b.close()
    from conveyor.backends.migrations import load_migrations

    every = len(load_migrations("conveyor.backends.postgres", "m_"))
    assert sorted(map(len, results)) == [0, every], results  # type: ignore[arg-type]


def test_listener_comes_back_after_its_connection_is_killed(url: str) -> None:
    backend, other = open_backend(url), open_backend(url)
    try:
        backend.migrate()
        backend.jobs_reserve(["default"], 1, 30, "w", T0)  # starts listening
        assert backend.wait_for_jobs(["default"], 0.5) is True  # fresh: may have missed some
        conn = backend.listener._conn  # type: ignore[attr-defined]
        assert conn is not None
        with psycopg.connect(PG_BASE, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (conn.info.backend_pid,))
        # the drop is noticed, the listener reconnects and reports a wake-up
        assert backend.wait_for_jobs(["default"], 5.0) is True
        woken: list[bool] = []
        listening = threading.Thread(
            target=lambda: woken.append(backend.wait_for_jobs(["default"], 10.0)))
        listening.start()
        other.jobs_insert([job(1)])
        listening.join(15)
        assert woken == [True]
    finally:
        backend.close()
        other.close()


def test_pool_recovers_after_its_connections_are_killed(url: str) -> None:
    backend = open_backend(url)
    try:
        backend.migrate()
        backend.jobs_insert([job(1)])
        assert _terminate(url.rsplit("application_name=", 1)[1]) >= 1
        # the dead pooled connection is noticed on checkout and replaced
        (got,) = backend.jobs_reserve(["default"], 1, 30, "w", T0)
        assert got.id == "job-1" and backend.jobs_complete([got.lease]) == 1
    finally:
        backend.close()


def test_recovery_runs_in_one_process_at_a_time(url: str) -> None:
    backend = open_backend(url)
    try:
        backend.migrate()
        backend.jobs_insert([job(1)])
        backend.jobs_reserve(["default"], 1, 30, "dead", T0)
        key = backend.options.lock_key("", "recover")  # type: ignore[attr-defined]
        with psycopg.connect(PG_BASE, autocommit=True) as other:
            other.execute("SELECT pg_advisory_lock(%s)", (key,))  # "another process"
            busy = backend.jobs_recover_expired(T0 + 60, default_tries=3)
            assert busy.released == [] and busy.failed == []
            other.execute("SELECT pg_advisory_unlock(%s)", (key,))
        assert backend.jobs_recover_expired(T0 + 60, default_tries=3).released == ["job-1"]
    finally:
        backend.close()


def test_unreachable_server_is_a_clear_store_unavailable() -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    backend = open_backend(f"postgresql://me:sekrit@127.0.0.1:{port}/test?pool_timeout=0.5")
    try:
        with pytest.raises(StoreUnavailable) as info:
            backend.ping()
    finally:
        backend.close()
    message = str(info.value)
    assert "unreachable" in message and "sekrit" not in message and "***" in message


def test_missing_tables_say_to_migrate(url: str) -> None:
    backend = open_backend(url)
    try:
        with pytest.raises(StoreError, match="conveyor migrate"):
            backend.jobs_get("x")
    finally:
        backend.close()


@pytest.mark.parametrize("bad", ["?schema=1bad", "?schema=a;drop", "?pool_max=x",
                                 "?pool_min=5&pool_max=2", "?prepare=maybe",
                                 "?fast_acks=perhaps"])
def test_bad_url_options_are_configuration_errors(bad: str) -> None:
    with pytest.raises(ConfigurationError):
        open_backend(f"postgresql://u:pw@127.0.0.1/test{bad}")


def test_bad_table_prefix_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError):
        open_backend("postgresql://127.0.0.1/test", table_prefix="a-b")


def test_failed_rows_name_the_store_without_credentials(url: str) -> None:
    from conveyor.records import Failure

    backend = open_backend(url.replace("postgres@", "postgres:sekrit@"))
    try:
        backend.migrate()
        backend.jobs_insert([job(1)])
        (r,) = backend.jobs_reserve(["default"], 1, 30, "w", T0)
        backend.jobs_fail([Failure(r.id, r.token, "boom", T0)])
        record = backend.failed_get(r.id)
        assert record is not None
        assert "sekrit" not in record.connection and "@" not in record.connection
        assert record.connection.startswith("postgresql://") and "/test" in record.connection
    finally:
        backend.close()


def test_fast_acks_keep_dispatches_durable(url: str) -> None:
    """Pooled sessions commit claims and acks asynchronously, but an insert restores the
    server's synchronous_commit for its own transaction."""
    backend = open_backend(url)
    try:
        backend.migrate()
        pool = backend.pool  # type: ignore[attr-defined]
        with pool.connection() as conn:
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
            level = pool.durable_level
            assert level not in (None, "off")
            with conn.transaction():
                conn.execute(backend.sql["insert"], (  # type: ignore[attr-defined]
                    ["j1"], ["default"], ["app.job"], ["{}"], [3], [T0], [T0], [None],
                    level, "some_channel"))
                assert conn.execute("SHOW synchronous_commit").fetchone() == (level,)
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("off",)
    finally:
        backend.close()


def test_fast_acks_off_leaves_every_commit_at_the_servers_level(url: str) -> None:
    from conveyor.records import Failure

    backend = open_backend(url + "&fast_acks=false")
    try:
        backend.migrate()
        backend.jobs_insert([job(1), job(2)])
        a, b = backend.jobs_reserve(["default"], 2, 30, "w", T0)
        assert backend.jobs_fail([Failure(a.id, a.token, "boom", T0)]) == 1
        assert backend.jobs_complete([b.lease]) == 1
        with backend.pool.connection() as conn:  # type: ignore[attr-defined]
            assert conn.execute("SHOW synchronous_commit").fetchone() != ("off",)
    finally:
        backend.close()


def test_claim_over_several_queues_reads_the_ready_index(url: str) -> None:
    backend = open_backend(url)
    try:
        backend.migrate()
        backend.jobs_insert([job(n, ("high", "normal", "low")[n % 3]) for n in range(3000)])
        sql = backend.sql.reserve(3)  # type: ignore[attr-defined]
        params: list[object] = []
        for queue in ("high", "normal", "low"):
            params += [queue, T0, queue, 8]
        params += [8, T0, "token", "w", T0 + 30]
        with backend.pool.connection() as conn:  # type: ignore[attr-defined]
            conn.execute(f"ANALYZE {backend.t['jobs']}")  # type: ignore[attr-defined]
            plan = "\n".join(r[0] for r in conn.execute("EXPLAIN " + sql, params))
        assert plan.count("Index Scan using jobs_ready_index") == 3, plan  # one per queue
        assert "Index Scan using jobs_pkey on jobs j" in plan, plan  # the update by id
        assert "Seq Scan" not in plan and "Sort" not in plan, plan
        assert "LockRows" in plan and "Limit" in plan
    finally:
        backend.close()


def test_the_jobs_table_is_vacuumed_early_and_autovacuum_off_is_a_risk(url: str) -> None:
    backend = open_backend(url)
    try:
        backend.migrate()
        jobs = backend.t["jobs"]  # type: ignore[attr-defined]
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            (options,) = conn.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass",
                                      (jobs,)).fetchone()
            (autovacuum,) = conn.execute("SHOW autovacuum").fetchone()
        assert "autovacuum_vacuum_scale_factor=0.01" in options
        flagged = [r for r in backend.store_risks() if r.startswith("autovacuum is off")]
        # this machine's server may run either way: the risk is reported exactly when it is
        assert bool(flagged) == (autovacuum == "off")
        assert all(f"VACUUM {jobs}" in r for r in flagged)
    finally:
        backend.close()
