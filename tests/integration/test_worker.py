"""The worker in-process, on SQLite: order, retries, timeouts, bad input, context."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence

import pytest

from conveyor import Conveyor, Fail, Retry, current_job
from conveyor.records import NewJob
from conveyor.routing import DEFAULT_WORKER_QUEUES
from conveyor.testing import run_until_empty
from conveyor.worker.options import WorkerOptions
from conveyor.worker.policy import WorkerDefaults
from conveyor.worker.runner import Worker


@pytest.fixture
def app(sqlite_url: str) -> Conveyor:
    return Conveyor(sqlite_url)


def test_strict_priority_high_then_normal_then_low(app: Conveyor) -> None:
    ran: list[str] = []

    @app.job(queue="emails")
    def mail(tag: str) -> None:
        ran.append(tag)

    for i in range(5):  # interleaved dispatch
        mail.options(priority="low").dispatch(f"low{i}")
        mail.dispatch(f"normal{i}")
        mail.options(priority="high").dispatch(f"high{i}")
    run_until_empty(app)  # the default worker order
    assert ran == [f"high{i}" for i in range(5)] + [f"normal{i}" for i in range(5)] + \
        [f"low{i}" for i in range(5)]


def test_weighted_queues_serve_every_queue(app: Conveyor) -> None:
    ran: list[str] = []

    @app.job
    def tag(queue: str) -> None:
        ran.append(queue)

    app.dispatch_many([tag.options(queue=q).prepare(q) for q in ("a", "b") for _ in range(200)])
    options = WorkerOptions(queues=["a", "b"], weights={"a": 3, "b": 1}, stop_when_empty=True,
                            sleep=0.05)
    Worker(app, options).run()
    first_half = ran[:200]
    assert first_half.count("b") > 10  # b is not starved while a has work
    assert first_half.count("a") > first_half.count("b")


def test_retries_with_a_backoff_list_then_success(app: Conveyor) -> None:
    attempts: list[int] = []

    @app.job(tries=3, backoff=[0])
    def flaky() -> None:
        attempts.append(current_job().attempt)
        if current_job().attempt < 3:
            raise ConnectionError("smtp down")

    flaky.dispatch()
    run_until_empty(app)
    assert attempts == [1, 2, 3]
    assert app.backend.failed_list() == []


def test_exponential_backoff_schedules_the_retry(app: Conveyor) -> None:
    @app.job(tries=3, backoff={"exponential": 100, "jitter": False})
    def broken() -> None:
        raise RuntimeError("boom")

    job_id = broken.dispatch()
    before = time.time()
    run_until_empty(app)  # attempt 1 fails; the retry is not due, so burst mode ends
    job = app.backend.jobs_get(job_id)
    assert job is not None and job.attempts == 1
    assert before + 99 <= job.available_at <= time.time() + 101


def test_final_failure_keeps_the_real_exception_and_traceback(app: Conveyor) -> None:
    @app.job(tries=2, backoff=0)
    def explode(order_id: int) -> None:
        raise ValueError(f"order {order_id} has no lines")

    job_id = explode.dispatch(42)
    run_until_empty(app)
    record = app.backend.failed_get(job_id)
    assert record is not None and record.attempts == 2
    assert "Traceback (most recent call last)" in record.exception
    assert "in explode" in record.exception
    assert record.summary == "ValueError: order 42 has no lines"
    assert "tried 2 of 2 times" in record.exception


def test_retry_until_replaces_the_count(app: Conveyor) -> None:
    attempts: list[int] = []

    @app.job(tries=1, backoff=0, retry_until=0.3)
    def until() -> None:
        attempts.append(current_job().attempt)
        raise RuntimeError("still down")

    job_id = until.dispatch()
    run_until_empty(app)
    assert len(attempts) >= 2  # more than `tries`, until the deadline
    record = app.backend.failed_get(job_id)
    assert record is not None and "retry_until reached" in record.exception


def test_retry_on_limits_which_errors_retry(app: Conveyor) -> None:
    @app.job(tries=5, backoff=0, retry_on=(ConnectionError,))
    def picky(kind: str) -> None:
        if current_job().attempt == 1 or kind == "key":
            raise ConnectionError("net") if kind == "net" else KeyError(kind)

    net, key = picky.dispatch("net"), picky.dispatch("key")
    run_until_empty(app)
    assert app.backend.failed_get(net) is None
    failed = app.backend.failed_get(key)
    assert failed is not None and failed.attempts == 1


def test_retry_and_fail_control_flow(app: Conveyor) -> None:
    @app.job(tries=3)
    def later() -> None:
        raise Retry(delay=3600)

    @app.job(tries=5)
    def give_up() -> None:
        raise Fail("address does not exist")

    @app.job(tries=3, context=True)
    def released(ctx: object) -> None:
        current_job().release(delay=1800)

    a, b, c = later.dispatch(), give_up.dispatch(), released.dispatch()
    run_until_empty(app)
    job = app.backend.jobs_get(a)
    assert job is not None and job.available_at > time.time() + 3500
    assert app.backend.jobs_get(c).available_at > time.time() + 1700  # type: ignore[union-attr]
    failed = app.backend.failed_get(b)
    assert failed is not None and failed.attempts == 1
    assert "Fail: address does not exist" in failed.exception


@pytest.mark.parametrize("concurrency", [1, 2])  # 1: the job runs on the worker's thread
def test_a_cpu_bound_job_is_stopped_at_its_timeout(app: Conveyor, concurrency: int) -> None:
    after: list[str] = []

    @app.job(timeout=0.3, tries=2, backoff=0)
    def spin() -> None:
        while True:
            pass

    @app.job
    def later() -> None:
        after.append("ran")

    job_id = spin.dispatch()
    later.dispatch()
    worker = run_until_empty(app, concurrency=concurrency)
    failed = app.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 2
    assert "JobTimeout" in failed.exception and "timeout of 0.3s" in failed.exception
    assert after == ["ran"] and worker.exit_code == 0


@pytest.mark.parametrize("concurrency", [1, 2])
def test_a_running_job_sees_the_worker_stopping(app: Conveyor, concurrency: int) -> None:
    started = threading.Event()
    seen: list[bool] = []

    @app.job
    def long_running() -> None:
        started.set()
        give_up = time.monotonic() + 10
        while not current_job().stopping and time.monotonic() < give_up:
            threading.Event().wait(0.005)  # the job's own work between two checks
        seen.append(current_job().stopping)

    job_id = long_running.dispatch()
    worker = Worker(app, WorkerOptions(queues=("default",), concurrency=concurrency,
                                       sleep=0.05))
    thread = threading.Thread(target=worker.run)
    thread.start()
    assert started.wait(10)
    worker.request_stop("test")
    thread.join(10)
    assert not thread.is_alive() and seen == [True]
    assert app.backend.jobs_get(job_id) is None  # it returned: done


def test_an_idle_worker_waits_out_a_failing_store_instead_of_spinning(
        app: Conveyor, sqlite_url: str) -> None:
    """At --concurrency 1 the main loop waits on the store itself: a wait that fails is
    logged and waited out, as the waiter thread does, never retried in a tight loop."""
    from conveyor.backends.sqlite.backend import SQLiteBackend
    from conveyor.errors import StoreUnavailable

    calls: list[float] = []

    class WaitFails(SQLiteBackend):
        def wait_for_jobs(self, queues: Sequence[str], timeout: float) -> bool:
            calls.append(timeout)
            raise StoreUnavailable("the wait cannot reach the store")

    app._backend = WaitFails(sqlite_url)
    worker = Worker(app, WorkerOptions(queues=("default",), concurrency=1, sleep=0.2,
                                       max_time=1.0))
    assert worker.run() == 0
    assert 1 <= len(calls) <= 15, len(calls)  # about one a poll period, not thousands


def test_an_async_job_is_cancelled_at_its_timeout(app: Conveyor) -> None:
    cancelled = threading.Event()

    @app.job(timeout=0.2, tries=1)
    async def hang() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job_id = hang.dispatch()
    run_until_empty(app)
    assert cancelled.is_set()
    failed = app.backend.failed_get(job_id)
    assert failed is not None and "timeout of 0.2s" in failed.exception


def test_sync_and_async_jobs_in_one_worker(app: Conveyor) -> None:
    ran: list[str] = []

    @app.job
    def plain(n: int) -> None:
        ran.append(f"sync{n}")

    @app.job
    async def coro(n: int) -> None:
        await asyncio.sleep(0)
        ran.append(f"async{n}")

    app.dispatch_many([plain.prepare(i) for i in range(20)] + [coro.prepare(i) for i in range(20)])
    run_until_empty(app, concurrency=4)
    assert sorted(ran) == sorted([f"sync{i}" for i in range(20)] + [f"async{i}" for i in range(20)])


def test_bad_input_fails_clearly_and_the_worker_goes_on(app: Conveyor) -> None:
    ran: list[int] = []

    @app.job
    def good(n: int) -> None:
        ran.append(n)

    now = time.time()
    bad = [
        NewJob("00000000-0000-7000-8000-000000000001", "default", "nobody.registered",
               '{"v":1,"job":"nobody.registered","args":[],"kwargs":{},"meta":{}}', now, now),
        NewJob("00000000-0000-7000-8000-000000000002", "default", good.name,
               "\x00not json at all", now, now),
        NewJob("00000000-0000-7000-8000-000000000003", "default", good.name,
               f'{{"v":1,"job":"{good.name}","args":[1,2,3],"kwargs":{{}},"meta":{{}}}}', now,
               now),
        NewJob("00000000-0000-7000-8000-000000000004", "default", good.name,
               '{"v":1,"job":"os.system","args":["echo pwned"],"kwargs":{},"meta":{}}', now, now),
    ]
    app.backend.jobs_insert(bad)
    good.dispatch(1)
    run_until_empty(app)
    assert ran == [1]
    reasons = {r.id[-1]: r.summary for r in app.backend.failed_list()}
    assert "no job named 'nobody.registered' is registered" in reasons["1"]
    assert "payload is not valid JSON" in reasons["2"]
    assert "arguments do not match" in reasons["3"]
    assert "payload names job 'os.system'" in reasons["4"]
    assert all(r.attempts == 1 for r in app.backend.failed_list())  # no pointless retries


def test_progress_and_context(app: Conveyor) -> None:
    seen: list[tuple[str, str, int, int]] = []
    progress: list[float] = []
    app.on("job_progress", lambda **e: progress.append(e["progress"]))

    @app.job(queue="reports", tries=4)
    def report() -> None:
        ctx = current_job()
        seen.append((ctx.id, ctx.queue, ctx.attempt, ctx.tries))
        ctx.progress(50)
        ctx.progress(150)

    job_id = report.dispatch()
    run_until_empty(app)
    assert seen == [(job_id, "reports", 1, 4)]
    assert progress == [50.0, 100.0]


def test_events_fire(app: Conveyor) -> None:
    events: list[str] = []
    for name in ("job_dispatched", "job_started", "job_succeeded", "job_failed",
                 "job_released", "worker_started", "worker_stopped"):
        app.on(name, lambda event, **_: events.append(event))

    @app.job(tries=2, backoff=0)
    def once_bad() -> None:
        raise RuntimeError("x")

    once_bad.dispatch()
    run_until_empty(app)
    assert events == ["job_dispatched", "worker_started", "job_started", "job_released",
                      "job_started", "job_failed", "worker_stopped"]


def test_paused_queue_is_skipped(app: Conveyor) -> None:
    ran: list[str] = []

    @app.job
    def tag(q: str) -> None:
        ran.append(q)

    tag.options(queue="emails").dispatch("emails")
    tag.options(queue="data").dispatch("data")
    app.backend.queue_pause("emails")
    run_until_empty(app, queues=["emails", "data"])
    assert ran == ["data"]
    app.backend.queue_resume("emails")
    run_until_empty(app, queues=["emails", "data"])
    assert ran == ["data", "emails"]


def test_worker_defaults_apply_to_jobs_that_do_not_say(app: Conveyor) -> None:
    @app.job
    def bare() -> None:
        raise RuntimeError("x")

    job_id = bare.dispatch()
    options = WorkerOptions(queues=list(DEFAULT_WORKER_QUEUES), stop_when_empty=True, sleep=0.05,
                            defaults=WorkerDefaults(tries=4, backoff=__import__(
                                "conveyor.retry").retry.parse_backoff(0)))
    Worker(app, options).run()
    failed = app.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 4
