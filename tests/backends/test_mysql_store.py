"""What only the MySQL / MariaDB store has: URL options, the server version gate, the
migration lock, transactional enqueue on the caller's PyMySQL connection, transparent
deadlock retries and reconnects."""


from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from conveyor import Conveyor
from conveyor.backends import open_backend
from conveyor.errors import ConfigurationError, StoreError, StoreUnavailable
from conveyor.records import NewJob

from .store_mysql import admin_connection, mysql_tables

pymysql = pytest.importorskip("pymysql")
from conveyor.backends.mysql import MySQLBackend  # noqa: E402
from conveyor.backends.mysql.options import (  # noqa: E402
    check_server_version,
    parse_mysql_url,
    parse_server_version,
)

T0 = 1_900_000_000.0


def new_job(n: int, queue: str = "default") -> NewJob:
    return NewJob(id=f"00000000-0000-7000-8000-{n:012d}", queue=queue, name="app.job",
                  payload="{}", available_at=T0, created_at=T0)


@pytest.fixture
def tables() -> Iterator[tuple[str, str]]:
    with mysql_tables() as found:
        yield found


@pytest.fixture
def backend(tables: tuple[str, str]) -> Iterator[MySQLBackend]:
    url, prefix = tables
    b = open_backend(url, table_prefix=prefix)
    assert isinstance(b, MySQLBackend)
    b.migrate()
    yield b
    b.close()


# -- no server needed ---------------------------------------------------------------------
def test_url_parsing_and_options() -> None:
    opts = parse_mysql_url("mariadb://shop:s%40cret@db.local:3307/shop?pool_size=3&poll_max=0.1")
    assert (opts.host, opts.port, opts.user, opts.password, opts.database) == (
        "db.local", 3307, "shop", "s@cret", "shop")
    assert opts.pool_size == 3 and opts.poll_max == 0.1
    assert "s@cret" not in repr(opts) and opts.connection_name("mariadb") == \
        "mariadb://db.local:3307/shop"
    with pytest.raises(ConfigurationError, match="accepted options are"):
        parse_mysql_url("mysql://u@h/db?pool=3")
    with pytest.raises(ConfigurationError, match="needs a database name") as info:
        parse_mysql_url("mysql://u:topsecret@h/")
    assert "topsecret" not in str(info.value)
    with pytest.raises(ConfigurationError, match="must be a float"):
        parse_mysql_url("mysql://u@h/db?poll_min=fast")


@pytest.mark.parametrize(("version", "flavour", "ok"), [
    ("10.11.19-MariaDB-0+deb12u1", "MariaDB", True),
    ("10.6.0-MariaDB", "MariaDB", True),
    ("10.5.23-MariaDB-log", "MariaDB", False),
    ("5.5.5-10.4.8-MariaDB", "MariaDB", False),
    ("8.0.1", "MySQL", True),
    ("8.4.3", "MySQL", True),
    ("8.0.0-dmr", "MySQL", False),
    ("5.7.44-log", "MySQL", False),
])
def test_servers_without_skip_locked_are_refused(version: str, flavour: str, ok: bool) -> None:
    assert parse_server_version(version)[0] == flavour
    if ok:
        check_server_version(version, "db:3306/shop")
    else:
        with pytest.raises(StoreUnavailable, match="SKIP LOCKED") as info:
            check_server_version(version, "db:3306/shop")
        assert version in str(info.value) and "upgrade" in str(info.value)


# -- against the shared MariaDB -------------------------------------------------------------
def test_two_migrations_at_once_take_turns(tables: tuple[str, str]) -> None:
    url, prefix = tables
    barrier = threading.Barrier(2)
    results: list[list[str]] = []

    def migrate() -> None:
        b = open_backend(url, table_prefix=prefix)
        try:
            barrier.wait(10)
            results.append(b.migrate())
        finally:
            b.close()

    threads = [threading.Thread(target=migrate) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    from conveyor.backends.migrations import load_migrations

    every = [f"{m.version:04d}_{m.name}"
             for m in load_migrations("conveyor.backends.mysql", prefix)]
    assert sorted(results, key=len) == [[], every]


def test_missing_tables_and_database_say_what_to_do(tables: tuple[str, str]) -> None:
    url, prefix = tables
    b = open_backend(url, table_prefix=prefix)
    with pytest.raises(StoreError, match="conveyor migrate"):
        b.jobs_get("x")
    b.close()
    missing = open_backend("mysql://root@127.0.0.1:3306/conveyor_no_such_db")
    with pytest.raises(ConfigurationError, match="CREATE DATABASE"):
        missing.ping()
    missing.close()


def test_transactional_enqueue_commits_and_rolls_back_with_the_caller(
        backend: MySQLBackend, tables: tuple[str, str]) -> None:
    url, prefix = tables
    app = Conveyor(url, table_prefix=prefix)

    @app.job
    def ship(order: int) -> None: ...

    # the caller's connection points at another database: conveyor's tables are qualified
    conn = admin_connection("test")
    conn.autocommit(False)
    try:
        conn.begin()
        rolled_back = ship.options(connection=conn).dispatch(1)
        # uncommitted: invisible to others, and a claim skips it instead of waiting
        assert backend.jobs_get(rolled_back) is None
        started = time.monotonic()
        assert backend.jobs_reserve(["default"], 5, 30, "w", time.time()) == []
        assert time.monotonic() - started < 5
        conn.rollback()
        assert backend.jobs_get(rolled_back) is None
        conn.begin()
        kept = app.dispatch_many([ship.prepare(2), ship.prepare(3)], connection=conn)
        conn.commit()
        assert all(backend.jobs_get(job_id) is not None for job_id in kept)
    finally:
        conn.close()
        app.close()


def wait_for_lock_wait(thread_id: int) -> None:
    watcher = admin_connection()
    deadline = time.monotonic() + 10
    try:
        with watcher.cursor() as cur:
            while time.monotonic() < deadline:
                cur.execute("SELECT COUNT(*) FROM information_schema.innodb_trx "
                            "WHERE trx_mysql_thread_id = %s AND trx_state = 'LOCK WAIT'",
                            (thread_id,))
                if cur.fetchone()[0]:
                    return
                time.sleep(0.01)
    finally:
        watcher.close()
    raise AssertionError("the other transaction never waited for our lock")


def test_a_deadlock_victim_is_retried_and_counted(backend: MySQLBackend) -> None:
    """Two transactions lock rows in opposite orders; InnoDB kills the lighter one, ours."""
    table = f"`conveyor_test`.{backend.table_prefix}scratch"
    setup = admin_connection()
    with setup.cursor() as cur:
        cur.execute(f"CREATE TABLE {table} (id INT PRIMARY KEY, v INT) ENGINE=InnoDB")
        cur.executemany(f"INSERT INTO {table} VALUES (%s, 0)", [(i,) for i in range(1, 301)])
    other = admin_connection()
    other.autocommit(False)
    holds_one, ours_holds_two = threading.Event(), threading.Event()
    attempts: list[int] = []

    def heavy() -> None:  # locks many rows (so it is not the victim), then wants row 2
        with other.cursor() as cur:
            cur.execute("SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED")
            cur.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 1")
            cur.execute(f"UPDATE {table} SET v = v + 1 WHERE id BETWEEN 3 AND 300")
            holds_one.set()
            ours_holds_two.wait(10)
            cur.execute(f"UPDATE {table} SET v = v + 1 WHERE id = 2")
        other.commit()

    def ours(cur: object) -> str:
        attempts.append(1)
        cur.execute(f"UPDATE {table} SET v = v + 10 WHERE id = 2")  # type: ignore[attr-defined]
        if len(attempts) == 1:
            ours_holds_two.set()
            wait_for_lock_wait(other.thread_id())  # the other now queues behind our row 2
        cur.execute(f"UPDATE {table} SET v = v + 10 WHERE id = 1")  # type: ignore[attr-defined]
        return "done"

    thread = threading.Thread(target=heavy)
    thread.start()
    assert holds_one.wait(10)
    try:
        assert backend.pool.run(ours, what="test") == "done"
    finally:
        thread.join(20)
        other.close()
        with setup.cursor() as cur:
            cur.execute(f"DROP TABLE {table}")
        setup.close()
    assert len(attempts) == 2 and backend.retries["deadlock"] == 1, backend.retries


def test_reconnects_when_its_connections_are_killed(backend: MySQLBackend) -> None:
    backend.jobs_insert([new_job(1)])
    ids = set()
    conns = [backend.pool.checkout() for _ in range(3)]
    for conn in conns:
        ids.add(conn.thread_id())
        backend.pool.checkin(conn)
    admin = admin_connection()
    with admin.cursor() as cur:
        for thread_id in ids:
            cur.execute("KILL CONNECTION %s", (thread_id,))
    admin.close()
    (job,) = backend.jobs_reserve(["default"], 1, 30, "w", T0)
    assert backend.jobs_complete([job.lease]) == 1
    assert backend.retries["reconnect"] >= 1


def test_many_threads_hammering_one_queue_see_no_errors(
        backend: MySQLBackend, tables: tuple[str, str]) -> None:
    url, prefix = tables
    other = open_backend(url, table_prefix=prefix)
    backend.jobs_insert([new_job(n) for n in range(400)])
    errors: list[BaseException] = []
    done: list[str] = []

    def drain(b: MySQLBackend | object) -> None:
        assert isinstance(b, MySQLBackend)
        try:
            while True:
                got = b.jobs_reserve(["other", "default"], 5, 30, "w", T0)
                if not got:
                    return
                b.jobs_extend_lease([j.lease for j in got], 30, T0 + 1)
                b.jobs_recover_expired(T0, 3)
                b.jobs_insert([NewJob(f"x-{j.id}", "other", "n", "{}", T0 + 99, T0)
                               for j in got[:1]])
                b.jobs_complete([j.lease for j in got])
                done.extend(j.id for j in got)
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=drain, args=(b,)) for b in (backend, other) * 3]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    other.close()
    assert errors == [] and sorted(done) == sorted(new_job(n).id for n in range(400))


def test_a_claim_whose_commit_reply_was_lost_is_taken_back(backend: MySQLBackend) -> None:
    """The server died while COMMIT was in flight: the claim did commit, the worker never
    heard. Its token is remembered and the next reserve returns those jobs at once."""
    backend.jobs_insert([new_job(n) for n in range(1, 5)])
    lost = backend.jobs_reserve(["default"], 3, 30, "w", T0)
    backend._unknown_claims.append(lost[0].token)  # as jobs_reserve does on CommitUnknown
    backend._unknown_claims.append("never-committed")
    first = backend.jobs_reserve(["default"], 2, 30, "w", T0 + 1)
    assert [j.id for j in first] == [j.id for j in lost[:2]]
    assert first[0].attempts == 1 and first[0].lease_expires_at == pytest.approx(T0 + 31)
    assert len(backend._unknown_claims) == 2  # one of the lost three is still to take back
    rest = backend.jobs_reserve(["default"], 5, 30, "w", T0 + 2)
    assert [j.id for j in rest] == [lost[2].id, new_job(4).id]
    assert backend._unknown_claims == []
    assert backend.jobs_complete([j.lease for j in lost]) == 0  # the old token is dead
    assert backend.jobs_complete([j.lease for j in first + rest]) == 4
