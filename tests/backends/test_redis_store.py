"""What the Redis store promises beyond the conformance suite: bulk inserts in bounded
memory, clear errors, wake-ups for delayed jobs, and the settings that can lose jobs."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from conveyor import Conveyor
from conveyor.backends import open_backend
from conveyor.backends.redis import RedisBackend
from conveyor.errors import ConfigurationError, StoreError, StoreUnavailable
from conveyor.records import Lease, NewJob, ReservedJob
from conveyor.worker.options import WorkerOptions
from conveyor.worker.runner import Worker
from tests.integration.redis_processes import free_port, own_redis

from .store_redis import REDIS_HOST, REDIS_PORT, redis_prefix


@pytest.fixture
def redis_backend() -> Iterator[RedisBackend]:
    with redis_prefix("r") as (url, prefix):
        backend = open_backend(url, table_prefix=prefix)
        assert isinstance(backend, RedisBackend)
        yield backend
        backend.close()


def new_job(n: int, queue: str = "bulk", at: float = 0.0) -> NewJob:
    return NewJob(id=f"job-{n:09d}", queue=queue, name="app.job", payload=f'{{"n":{n}}}',
                  available_at=at, created_at=at)


@pytest.mark.timeout(120)
def test_100k_jobs_insert_in_one_call_with_bounded_memory(redis_backend: RedisBackend) -> None:
    records = [new_job(n) for n in range(100_000)]
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        redis_backend.jobs_insert(records)
        peak = tracemalloc.get_traced_memory()[1] - before
    finally:
        tracemalloc.stop()
    # chunks of 500 jobs, two in flight: a few MB whatever the batch size
    assert peak < 32 * 1024 * 1024, f"peak {peak / 1e6:.1f} MB"
    (stats,) = [s for s in redis_backend.queue_stats(1.0) if s.queue == "bulk"]
    assert stats.available == 100_000


def test_a_failing_chunk_inserts_nothing_of_its_own(redis_backend: RedisBackend) -> None:
    redis_backend.jobs_insert([new_job(5)])
    with pytest.raises(Exception, match="job-000000005 already exists"):
        redis_backend.jobs_insert([new_job(1), new_job(2, "other"), new_job(5)])
    assert redis_backend.jobs_get(new_job(1).id) is None
    assert redis_backend.jobs_get(new_job(2).id) is None


def test_wake_up_markers_stay_capped(redis_backend: RedisBackend) -> None:
    """Each insert pushes a marker a job, at most ``marker_cap`` (16) kept: a backlog
    never grows the list, and a trim happens only once it is over the cap."""
    markers = redis_backend.keys.queue("bulk", "marker")
    redis_backend.jobs_insert([new_job(n) for n in range(3)])
    assert redis_backend.client.llen(markers) == 3
    redis_backend.jobs_insert([new_job(n) for n in range(3, 43)])
    assert redis_backend.client.llen(markers) == 16
    for n in range(43, 48):
        redis_backend.jobs_insert([new_job(n)])
        assert redis_backend.client.llen(markers) == 16


def test_unreachable_server_is_a_clear_store_unavailable() -> None:
    backend = open_backend(f"redis://:secret@127.0.0.1:{free_port()}/0")
    with pytest.raises(StoreUnavailable, match=r"unreachable.*redis-server is running") as info:
        backend.ping()
    assert "secret" not in str(info.value)
    backend.close()


@pytest.mark.parametrize("url", ["redis://localhost/0?prefix=a{b}", "redis://localhost/0?chunk=0",
                                 "redis://localhost/0?poll_us=-1", "redis://localhost/0?poll_us=x",
                                 "redis://localhost/0?poll_us=%C2%B2"])
def test_bad_url_options_are_configuration_errors(url: str) -> None:
    with pytest.raises(ConfigurationError):
        open_backend(url)


def test_url_prefix_option_wins_over_table_prefix() -> None:
    backend = open_backend("redis://localhost:6379/3?prefix=shop&socket_timeout=3",
                           table_prefix="ignored")
    assert isinstance(backend, RedisBackend)
    assert backend.keys.queue("emails", "wait") == "shop:{emails}:wait"
    assert backend.options.client_url == "redis://localhost:6379/3?socket_timeout=3"
    backend.close()


@pytest.mark.timeout(30)
def test_wait_ends_when_a_delayed_job_falls_due(redis_backend: RedisBackend) -> None:
    redis_backend.jobs_insert([new_job(1, "later", at=time.time() + 0.3)])
    assert redis_backend.wait_for_jobs(["later"], 5.0)  # the insert's own marker
    started = time.monotonic()
    assert redis_backend.wait_for_jobs(["later"], 10.0)
    assert time.monotonic() - started < 9.0  # woken by the due job, not the timeout


@pytest.mark.timeout(30)
def test_every_idle_waiter_wakes_for_a_bulk_insert(redis_backend: RedisBackend) -> None:
    woken: list[bool] = []
    ready = threading.Barrier(4)

    def wait() -> None:
        ready.wait(5)
        woken.append(redis_backend.wait_for_jobs(["fan"], 10.0))

    threads = [threading.Thread(target=wait) for _ in range(3)]
    for t in threads:
        t.start()
    ready.wait(5)
    redis_backend.jobs_insert([new_job(n, "fan") for n in range(10)])
    for t in threads:
        t.join(15)
    assert woken == [True, True, True]


def blocked_clients() -> int:
    client = redis.Redis(host=REDIS_HOST, port=REDIS_PORT)
    try:
        return int(client.info("clients")["blocked_clients"])
    finally:
        client.close()


def until_one_more_blocked(before: int) -> None:
    """Until the server holds one more client in a blocking pop than ``before``."""
    deadline = time.monotonic() + 10
    while blocked_clients() <= before:
        assert time.monotonic() < deadline, "the waiter never blocked"
        time.sleep(0.002)


@pytest.mark.timeout(30)
def test_a_wait_that_reserves_returns_the_job_that_woke_it(redis_backend: RedisBackend) -> None:
    got: list[tuple[bool, list[ReservedJob]]] = []
    before = blocked_clients()
    thread = threading.Thread(target=lambda: got.append(
        redis_backend.wait_and_reserve(["wake"], 10.0, 5, 30.0, "w1", time.time())))
    thread.start()
    until_one_more_blocked(before)
    redis_backend.jobs_insert([new_job(1, "wake", at=time.time())])
    thread.join(15)
    ((woken, jobs),) = got
    assert woken and [j.id for j in jobs] == [new_job(1).id]
    (job,) = jobs
    assert job.attempts == 1 and job.lease_expires_at == pytest.approx(job.reserved_at + 30.0)
    assert redis_backend.jobs_get(job.id).token == job.token  # type: ignore[union-attr]
    assert redis_backend.jobs_complete([Lease(job.id, job.token)]) == 1


@pytest.mark.timeout(30)
def test_a_wait_that_reserves_takes_no_job_due_after_the_callers_clock(
        redis_backend: RedisBackend) -> None:
    now = time.time()
    redis_backend.jobs_insert([new_job(1, "skew", at=now)])
    # the caller's clock is a minute behind the server's: by it the job is not due yet
    woken, jobs = redis_backend.wait_and_reserve(["skew"], 1.0, 5, 30.0, "w1", now - 60)
    assert woken and jobs == []  # woken by the marker; the caller reserves by its clock
    assert [j.id for j in redis_backend.jobs_reserve(["skew"], 5, 30.0, "w1", now)] == \
        [new_job(1).id]


@pytest.mark.timeout(30)
def test_an_idle_worker_at_concurrency_1_takes_its_job_from_the_wake_up(
        redis_backend: RedisBackend) -> None:
    app = Conveyor(f"{redis_backend.options.client_url}?prefix={redis_backend.keys.prefix}")
    ran = threading.Event()
    dispatched: list[str] = []
    from_wait: list[str] = []

    @app.job(queue="idle")
    def work() -> None:
        ran.set()

    backend = app.backend
    real_wait = backend.wait_and_reserve

    def spy(*args: Any) -> tuple[bool, list[ReservedJob]]:
        if not dispatched:  # the worker found nothing and went idle: a job arrives now
            dispatched.append(work.dispatch())
        woken, jobs = real_wait(*args)
        from_wait.extend(j.id for j in jobs)
        return woken, jobs

    backend.wait_and_reserve = spy  # type: ignore[method-assign]
    worker = Worker(app, WorkerOptions(queues=["idle"], concurrency=1, sleep=30.0))
    thread = threading.Thread(target=worker.run)
    thread.start()
    try:
        assert ran.wait(10)
    finally:
        worker.request_stop("test")
        thread.join(10)
        app.close()
    assert from_wait == dispatched  # reserved by the wake-up's round trip, not a fetch


@pytest.mark.timeout(60)
def test_store_risks_name_the_setting_to_change(tmp_path: Path) -> None:
    with own_redis(tmp_path) as server:
        backend = open_backend(server.url)
        assert isinstance(backend, RedisBackend)
        assert backend.store_risks() == []  # AOF on, noeviction
        client = redis.Redis(port=server.port)
        client.config_set("maxmemory-policy", "allkeys-lru")
        client.config_set("appendonly", "no")
        risks = backend.store_risks()
        assert any("maxmemory-policy noeviction" in r for r in risks)
        assert any("appendonly yes" in r for r in risks)
        client.close()
        backend.close()


@pytest.mark.timeout(30)
def test_single_slot_waiter_wakes_for_any_of_its_queues() -> None:
    with redis_prefix("m") as (url, prefix):
        backend = open_backend(f"{url}?single_slot=1", table_prefix=prefix)
        other = open_backend(f"{url}?single_slot=1", table_prefix=prefix)
        woken: list[bool] = []
        ready = threading.Event()

        def wait() -> None:
            ready.set()
            woken.append(backend.wait_for_jobs(["a", "b", "c"], 10.0))

        thread = threading.Thread(target=wait)
        thread.start()
        ready.wait(5)
        other.jobs_insert([new_job(1, "c")])
        thread.join(15)
        assert woken == [True]
        assert [j.queue for j in backend.jobs_reserve(["a", "b", "c"], 5, 30, "w", 1.0)] == ["c"]
        backend.close()
        other.close()


def test_a_failure_text_that_is_not_valid_unicode_is_still_recorded(
        redis_backend: RedisBackend) -> None:
    from conveyor.records import Failure

    redis_backend.jobs_insert([new_job(1, "q")])
    (r,) = redis_backend.jobs_reserve(["q"], 1, 30, "w", 1.0)
    assert redis_backend.jobs_fail([Failure(r.id, r.token, "OSError: name \udcff", 2.0)]) == 1
    record = redis_backend.failed_get(r.id)
    assert record is not None and record.exception == "OSError: name \\udcff"


def test_an_insert_resent_after_a_lost_reply_changes_nothing(
        redis_backend: RedisBackend) -> None:
    ((script, group, args),) = redis_backend._insert_calls([new_job(1, "q")])
    redis_backend.run("insert", script, group, *args)
    (r,) = redis_backend.jobs_reserve(["q"], 5, 30, "w", 1.0)
    redis_backend.run("insert", script, group, *args)  # the client's retry, same nonce
    assert redis_backend.jobs_reserve(["q"], 5, 30, "w", 1.0) == []
    got = redis_backend.jobs_get(r.id)
    assert got is not None and got.token == r.token and got.attempts == 1


@pytest.mark.timeout(60)
def test_on_redis_cluster_queues_spread_over_nodes_keep_strict_order() -> None:
    from .store_redis import redis_cluster_store

    with redis_cluster_store(Path(".")) as (url, prefix):
        backend = open_backend(url, table_prefix=prefix)
        assert isinstance(backend, RedisBackend)
        queues = [f"q{i}" for i in range(6)]  # six hash tags: spread over the 3 primaries
        cluster: Any = backend.client
        assert len({cluster.keyslot(f"{{{q}}}") for q in queues}) == 6
        backend.jobs_insert([new_job(i, q) for i, q in enumerate(reversed(queues))])
        woken = backend.wait_for_jobs(queues, 5.0)
        got = backend.jobs_reserve(queues, 4, 30, "w", 1.0)
        assert woken and [j.queue for j in got] == queues[:4]
        assert backend.jobs_complete([j.lease for j in got]) == 4
        risks = backend.store_risks()  # every primary runs without persistence here
        assert len([r for r in risks if "appendonly yes" in r]) == 3
        backend.close()


def _lane_client_id(backend: RedisBackend) -> int:
    conn = backend._lane().conn
    conn.send_command("CLIENT", "ID")
    return int(conn.read_response())


def test_a_killed_lane_connection_costs_no_call(redis_backend: RedisBackend) -> None:
    """The thread's own connection dies between calls: the call goes through the pool."""
    redis_backend.jobs_insert([new_job(1)])
    admin = redis.Redis.from_url(redis_backend.options.client_url)
    try:
        admin.client_kill_filter(_id=_lane_client_id(redis_backend))
    finally:
        admin.close()
    redis_backend.jobs_insert([new_job(2)])
    reserved = redis_backend.jobs_reserve(["bulk"], 10, 30.0, "w", time.time())
    assert sorted(j.id for j in reserved) == [new_job(1).id, new_job(2).id]


def test_the_lane_reloads_scripts_after_a_script_flush(redis_backend: RedisBackend) -> None:
    redis_backend.jobs_insert([new_job(1)])
    redis_backend.client.script_flush()
    redis_backend.jobs_insert([new_job(2)])
    (stats,) = [s for s in redis_backend.queue_stats(1.0) if s.queue == "bulk"]
    assert stats.available == 2


@pytest.fixture
def two_a_chunk() -> Iterator[RedisBackend]:
    """A store whose dispatch_many streams chunks of two jobs."""
    with redis_prefix("k") as (url, prefix):
        backend = open_backend(f"{url}?chunk=2", table_prefix=prefix)
        assert isinstance(backend, RedisBackend)
        yield backend
        backend.close()


def stored(backend: RedisBackend, count: int) -> list[bool]:
    return [backend.jobs_get(new_job(n).id) is not None for n in range(count)]


def test_a_refused_chunk_stops_the_stream(two_a_chunk: RedisBackend) -> None:
    two_a_chunk.jobs_insert([new_job(5)])
    with pytest.raises(StoreError, match="job-000000005 already exists"):
        two_a_chunk.jobs_insert([new_job(n) for n in range(5)] + [new_job(5)] +
                                [new_job(n) for n in range(6, 12)])
    # chunks 0-1 and 2-3 stored; 4-5 refused whole; 6-7 was in flight with it; no more
    assert stored(two_a_chunk, 12) == [True] * 4 + [False, True] + [True] * 2 + [False] * 4


class _FailingReads:
    """The lane's real connection, whose second reply is lost on the way back."""

    def __init__(self, conn: Any) -> None:
        self.conn, self.reads = conn, 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.conn, name)

    def read_response(self) -> Any:
        self.reads += 1
        if self.reads == 2:
            raise redis.exceptions.ConnectionError("connection lost (test)")
        return self.conn.read_response()


def test_a_stream_whose_lane_fails_resends_the_rest_through_the_pool(
        two_a_chunk: RedisBackend) -> None:
    lane = two_a_chunk._lane()
    lane.conn = _FailingReads(lane.conn)
    two_a_chunk.jobs_insert([new_job(n) for n in range(10)])
    # the chunk whose reply was lost was stored; sent again, its nonce made it a no-op
    assert lane.conn.reads >= 2 and stored(two_a_chunk, 10) == [True] * 10
    (stats,) = [s for s in two_a_chunk.queue_stats(1.0) if s.queue == "bulk"]
    assert stats.available == 10


def test_a_stream_after_a_script_flush_loads_the_scripts(two_a_chunk: RedisBackend) -> None:
    two_a_chunk.jobs_insert([new_job(0)])
    two_a_chunk.client.script_flush()
    two_a_chunk.jobs_insert([new_job(n) for n in range(1, 10)])
    assert stored(two_a_chunk, 10) == [True] * 10


def test_each_thread_has_its_own_lane_and_close_ends_them(redis_backend: RedisBackend) -> None:
    lanes: list[Any] = []

    def insert(n: int) -> None:
        redis_backend.jobs_insert([new_job(n)])
        lanes.append(redis_backend._lane())

    threads = [threading.Thread(target=insert, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert len({id(lane.conn) for lane in lanes}) == 3
    redis_backend.close()
    assert all(not lane.conn.is_connected for lane in lanes)


def test_a_round_is_one_script_call_and_completes_of_other_queues_go_apart(
        redis_backend: RedisBackend) -> None:
    from conveyor.records import Lease, Release

    redis_backend.jobs_insert([new_job(1, "a"), new_job(2, "a"), new_job(3, "b"),
                               new_job(4, "b"), new_job(5, "b")])
    a1, a2 = redis_backend.jobs_reserve(["a"], 2, 30.0, "w", 10.0)
    b3, b4 = redis_backend.jobs_reserve(["b"], 2, 30.0, "w", 10.0)
    sent: list[list[str]] = []
    on_lane = redis_backend._on_lane

    def spy(calls: Any, *lead: Any, **options: Any) -> Any:
        sent.append([script for script, _queues, _args in calls])
        return on_lane(calls, *lead, **options)

    redis_backend._on_lane = spy  # type: ignore[method-assign]
    # b3 rides with the reserve from "b"; a1 (another queue) and the stale lease go apart
    got = redis_backend.jobs_ack_and_reserve(
        [b3.lease, a1.lease, Lease(b4.id, "stale/b")], [Release(a2.id, a2.token, 11.0)], [],
        ["b"], 5, 30.0, "w", 12.0)
    assert sent == [["complete", "release", "complete_reserve"]]
    assert [j.id for j in got] == [new_job(5).id]
    assert redis_backend.jobs_get(b3.id) is None and redis_backend.jobs_get(a1.id) is None
    assert redis_backend.jobs_get(b4.id) is not None  # the stale token changed nothing
    sent.clear()
    (five,) = got
    assert redis_backend.jobs_ack_and_reserve([five.lease], [], [], ["a", "b"], 5, 30.0, "w",
                                              13.0)[0].id == a2.id  # released, due again
    assert sent == [["complete_reserve"]] and redis_backend.jobs_get(five.id) is None


class _SocketConn:
    """What _Lane.poll_reply looks at: redis-py's connection's socket."""

    def __init__(self, sock: Any) -> None:
        self._sock = sock


def test_a_reply_is_polled_for_only_in_a_burst_and_only_for_the_budget() -> None:
    import socket

    from conveyor.backends.redis.connection import _Lane

    ours, server = socket.socketpair()
    with ours, server:
        lane = _Lane(_SocketConn(ours))
        # no reply yet, outside a burst (no reply read before): back at once, not 5 s later
        started = time.perf_counter()
        lane.poll_reply(5.0)
        assert time.perf_counter() - started < 4.0
        # in a burst, with no reply coming: it polls for the whole budget, then gives up;
        # after eight such polls in a row it stops polling for a while (replies here are
        # slower than the budget)
        for _ in range(8):
            assert lane.quiet_until == 0.0
            lane.replied = started = time.perf_counter()
            lane.poll_reply(0.01)
            assert time.perf_counter() - started >= 0.01
        assert lane.quiet_until > time.perf_counter()
        lane.replied = started = time.perf_counter()
        lane.poll_reply(5.0)
        assert time.perf_counter() - started < 4.0
        # in a burst, with the reply there: back at once; a budget of 0 never polls
        server.sendall(b"+OK\r\n")
        lane.replied, lane.quiet_until = time.perf_counter(), 0.0
        started = time.perf_counter()
        lane.poll_reply(5.0)
        lane.poll_reply(0.0)
        assert time.perf_counter() - started < 4.0
        # a closed connection (no socket) is not polled
        lane.conn = _SocketConn(None)
        lane.replied = time.perf_counter()
        started = time.perf_counter()
        lane.poll_reply(5.0)
        assert time.perf_counter() - started < 4.0


@pytest.fixture
def budgets(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The budget of every call the lanes make to poll_reply (which still runs)."""
    from conveyor.backends.redis.connection import _Lane

    seen: list[float] = []
    real = _Lane.poll_reply

    def spy(self: _Lane, budget: float) -> None:
        seen.append(budget)
        real(self, budget)

    monkeypatch.setattr(_Lane, "poll_reply", spy)
    return seen


@pytest.mark.parametrize(("option", "budget"), [("", 200e-6), ("?poll_us=0", 0.0),
                                                ("?poll_us=1000", 1e-3)])
def test_dispatches_poll_for_their_replies_with_the_url_budget(
        option: str, budget: float, budgets: list[float]) -> None:
    with redis_prefix("poll") as (url, prefix):
        backend = open_backend(url + option, table_prefix=prefix)
        assert isinstance(backend, RedisBackend)
        try:
            for n in range(20):  # a burst: each one's reply comes within 1 ms of the last
                backend.jobs_insert([new_job(n)])
            backend.jobs_insert([new_job(n) for n in range(20, 28)])  # a few: polled too
            backend.jobs_insert([new_job(n) for n in range(28, 40)])  # more: not polled
            reserved = backend.jobs_reserve(["bulk"], 100, 30.0, "w", 1.0)
            assert sorted(j.id for j in reserved) == [new_job(n).id for n in range(40)]
            # only the small inserts poll: the big one and the reserve's round trip do not
            assert budgets == [budget] * 21
        finally:
            backend.close()


def test_a_worker_round_polls_for_its_reply_only_behind_a_full_one(
        redis_backend: RedisBackend, budgets: list[float]) -> None:
    redis_backend.jobs_insert([new_job(n) for n in range(5)])
    budgets.clear()
    sizes = []
    for _ in range(4):
        got = redis_backend.jobs_ack_and_reserve([], [], [], ["bulk"], 2, 30.0, "w", 1.0)
        sizes.append((len(got), len(budgets)))
    # 2 (first round: no backlog known), 2 (behind a full round: polled), 1 (polled),
    # 0 (behind a partial round: the queue ran dry, so it sleeps on its reply)
    assert sizes == [(2, 0), (2, 1), (1, 2), (0, 2)]


@pytest.mark.parametrize("option", ["", "?single_slot=1"])
def test_a_refused_queue_name_never_reaches_the_queue_set(option: str) -> None:
    with redis_prefix("qs") as (url, prefix):
        backend = open_backend(url + option, table_prefix=prefix)
        try:
            with pytest.raises(ConfigurationError, match="invalid queue name"):
                backend.jobs_insert([new_job(1, "ok"), new_job(2, "bad\x00name")])
            assert backend.known_queues() == []
            backend.jobs_insert([new_job(3, "ok")])
            assert [s.queue for s in backend.queue_stats(time.time())] == ["ok"]
        finally:
            backend.close()
