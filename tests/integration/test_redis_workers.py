"""Real ``conveyor work`` processes on Redis: exactly-once under 4 workers, SIGKILL
recovery through leases, a Redis restart under load, strict priority across queues.

The 4-worker test runs 4 x 2,500 jobs by default and 4 x 10,000 with CONVEYOR_LONG=1.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from conveyor.errors import StoreUnavailable
from tests.apps import ledger
from tests.backends.store_redis import redis_prefix

from .redis_processes import finish, own_redis, start_worker, stop, wait_until

LONG = os.environ.get("CONVEYOR_LONG", "") == "1"
PER_WORKER = 10_000 if LONG else 2_500


@pytest.fixture
def shared() -> Iterator[tuple[str, str, redis.Redis]]:
    """(store URL with a prefix of the test's own, ledger key, ledger client)."""
    with redis_prefix("w") as (url, prefix):
        client = redis.Redis.from_url(url, decode_responses=True)
        yield f"{url}?prefix={prefix}", f"{prefix}:ledger", client
        client.close()
        ledger.app.close()


def base_url(url: str) -> str:
    return url.split("?", 1)[0]


def runs(client: redis.Redis, key: str) -> dict[int, int]:
    return {int(k): int(v) for k, v in client.hgetall(f"{key}:runs").items()}


def dispatch_records(url: str, numbers: range, pause: float = 0.0) -> None:
    ledger.app.use_store(url)
    ledger.app.dispatch_many([ledger.record.prepare(n, pause) for n in numbers])


@pytest.mark.slow
@pytest.mark.timeout(300 if LONG else 120)
def test_four_workers_run_every_job_exactly_once(shared: tuple[str, str, redis.Redis]) -> None:
    url, key, client = shared
    total = 4 * PER_WORKER
    dispatch_records(url, range(total))
    workers = [start_worker(url, base_url(url), key, "--stop-when-empty", "--concurrency", "4")
               for _ in range(4)]
    for worker in workers:
        code, out = finish(worker, 240 if LONG else 100)
        assert code == 0, out[-2000:]
    counted = runs(client, key)
    assert len(counted) == total
    assert set(counted.values()) == {1}, {n: c for n, c in counted.items() if c != 1}
    assert all(s.available == s.running == s.failed == 0
               for s in ledger.app.backend.queue_stats(0))


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_sigkilled_worker_jobs_rerun_after_the_lease(
        shared: tuple[str, str, redis.Redis]) -> None:
    url, key, client = shared
    total = 300
    dispatch_records(url, range(total), pause=0.01)
    victim = start_worker(url, base_url(url), key, "--concurrency", "4", "--lease", "2")
    wait_until(lambda: client.hlen(f"{key}:runs") >= 40, 60, "the victim to run 40 jobs")
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    survivor = start_worker(url, base_url(url), key, "--concurrency", "4", "--lease", "2")
    wait_until(lambda: client.hlen(f"{key}:runs") >= total, 90, "every job to run")
    # a job the victim recorded but had not acked when it died is still leased to it: it
    # runs again once the survivor recovers its lease (every 2 s), which can come after
    # every number has run once; wait for that too before stopping the survivor
    wait_until(lambda: all(s.available == s.running == 0
                           for s in ledger.app.backend.queue_stats(0)),
               30, "the victim's leased jobs to run again")
    code, out = stop(survivor)
    assert code == 0, out[-2000:]
    counted = runs(client, key)
    assert sorted(counted) == list(range(total))
    # only jobs the victim had in flight (4 at most) may have run twice
    assert sum(c - 1 for c in counted.values()) <= 4
    stats = ledger.app.backend.queue_stats(0)
    assert all(s.available == s.running == s.failed == 0 for s in stats)


@pytest.mark.chaos
@pytest.mark.timeout(120)
def test_redis_restart_mid_run_loses_nothing(tmp_path: Path) -> None:
    with own_redis(tmp_path) as server:
        url = f"{server.url}?prefix=restart"
        key = "restart:ledger"
        client = redis.Redis.from_url(server.url, decode_responses=True)
        first = 400
        dispatch_records(url, range(first), pause=0.02)
        # a reserve whose reply the crash swallowed returns after its lease: keep it short,
        # but longer than the outage so acks still land in time
        workers = [start_worker(url, server.url, key, "--concurrency", "4", "--lease", "8")
                   for _ in range(2)]
        wait_until(lambda: client.hlen(f"{key}:runs") >= 50, 60, "50 jobs to run")
        # a dispatcher keeps going through the restart, retrying what the store refused
        dispatched: list[int] = []
        done, refused, refused_again = threading.Event(), threading.Event(), threading.Event()

        def dispatcher() -> None:
            for n in range(first, first + 100):
                while True:
                    try:
                        ledger.record.dispatch(n)
                        break
                    except StoreUnavailable:
                        (refused_again if refused.is_set() else refused).set()
                dispatched.append(n)
            done.set()

        thread = threading.Thread(target=dispatcher)
        thread.start()
        ran_before = client.hlen(f"{key}:runs")
        server.kill()
        # stay down until the client's own retries gave up twice in a row for the
        # dispatcher: by then every worker's call that met the outage has run out of its
        # retries too and reached the worker as an error (once was not enough: a worker
        # whose call began a little after the dispatcher's rode over the outage inside
        # the client's retries, and logged nothing)
        assert refused.wait(60) and refused_again.wait(60)
        server.start()
        thread.join(60)
        assert done.is_set()
        wait_until(lambda: client.hlen(f"{key}:runs") >= first + 100, 90,
                   "every job to run after the restart")
        outputs = []
        for worker in workers:
            code, out = stop(worker)
            assert code == 0, out[-2000:]
            outputs.append(out)
        assert ran_before < first  # the restart really came mid-run
        assert any("store trouble" in out for out in outputs)  # and the workers saw it
        counted = runs(client, key)
        assert sorted(counted) == list(range(first + 100))
        # a run repeats only where a reply was lost in the crash: a handful at most
        assert sum(c - 1 for c in counted.values()) <= 8
        client.close()
        ledger.app.close()


def _priority(label: str) -> int:
    return {"h": 0, "n": 1, "l": 2}[label[0]]


@pytest.mark.timeout(120)
def test_strict_priority_across_queues_under_concurrent_dispatch(
        shared: tuple[str, str, redis.Redis]) -> None:
    url, key, client = shared
    ledger.app.use_store(url)
    prio = {"h": "high", "n": "normal", "l": "low"}

    def dispatch(thread: int, letters: str, count: int, pause: float = 0.0) -> None:
        for i in range(count):
            letter = letters[i % len(letters)]
            label = f"{letter}{thread}-{i}"
            ledger.trace.options(priority=prio[letter]).dispatch(label, pause)
            if letter == "h":
                client.rpush(f"{key}:order", f"D:{label}")  # dispatch returned

    # 1. three dispatchers interleave all priorities; one worker then drains in order
    threads = [threading.Thread(target=dispatch, args=(t, "lnh", 60)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    client.delete(f"{key}:order")
    queues = "default_high,default,default_low"
    code, out = finish(start_worker(url, base_url(url), key, "--queue", queues,
                                    "--stop-when-empty"), 60)
    assert code == 0, out[-2000:]
    order = [str(x) for x in client.lrange(f"{key}:order", 0, -1)]
    assert len(order) == 180
    assert [_priority(x) for x in order] == sorted(_priority(x) for x in order)

    # 2. high jobs dispatched concurrently while low ones run overtake every waiting low
    client.delete(f"{key}:order")
    dispatch(9, "l", 150, 0.01)
    # not burst mode: the worker must still be there when the high jobs come
    worker = start_worker(url, base_url(url), key, "--queue", queues)
    wait_until(lambda: client.llen(f"{key}:order") >= 10, 60, "low jobs to start")
    threads = [threading.Thread(target=dispatch, args=(t, "h", 15)) for t in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    wait_until(lambda: client.llen(f"{key}:order") >= 150 + 45 + 45, 60, "every job to start")
    code, out = stop(worker)
    assert code == 0, out[-2000:]
    order = [str(x) for x in client.lrange(f"{key}:order", 0, -1)]
    started = [x for x in order if not x.startswith("D:")]
    assert len(started) == 150 + 45
    for position, entry in enumerate(order):
        if not entry.startswith("D:"):
            continue
        label = entry[2:]
        start = order.index(label)
        if start < position:
            continue  # it started before the dispatcher could even note the dispatch
        lows = [x for x in order[position + 1:start] if x.startswith("l")]
        # at most one low job, reserved just before the high one was stored
        assert len(lows) <= 1, (label, lows)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_workers_on_redis_cluster_run_every_job_exactly_once(
        shared: tuple[str, str, redis.Redis]) -> None:
    from tests.backends.store_redis import redis_cluster_store

    _, key, client = shared  # the ledger stays on the shared server
    with redis_cluster_store(Path(".")) as (url, prefix):
        url = f"{url}&prefix={prefix}"
        ledger.app.use_store(url)
        total = 900  # over three queues, so over three slots
        ledger.app.dispatch_many([
            ledger.record.options(priority=("high", "normal", "low")[n % 3]).prepare(n)
            for n in range(total)])
        queues = "default_high,default,default_low"
        workers = [start_worker(url, base_url(shared[0]), key, "--queue", queues,
                                "--stop-when-empty", "--concurrency", "4") for _ in range(2)]
        for worker in workers:
            code, out = finish(worker, 100)
            assert code == 0, out[-2000:]
        counted = runs(client, key)
        assert sorted(counted) == list(range(total)) and set(counted.values()) == {1}
        ledger.app.close()
