"""The store conformance suite: every protocol method, every transition, every fencing
rule, run unchanged against each store in ``stores.STORES``."""

from __future__ import annotations

import threading

import pytest

from conveyor.backends import Backend
from conveyor.records import Failure, Lease, NewJob, Release, WorkerInfo

T0 = 1_900_000_000.0  # a fixed clock: every call passes ``now`` explicitly
LEASE = 30.0


def job(n: int, queue: str = "default", at: float = T0, tries: int | None = 3,
        name: str = "app.job", created: float | None = None) -> NewJob:
    return NewJob(id=f"00000000-0000-7000-8000-{n:012d}", queue=queue, name=name,
                  payload=f'{{"v":1,"job":"{name}","args":[{n}],"kwargs":{{}},"meta":{{}}}}',
                  available_at=at, created_at=created if created is not None else at,
                  max_tries=tries)


def ids(jobs: list) -> list[str]:  # type: ignore[type-arg]
    return [j.id for j in jobs]


def test_migrate_is_idempotent(backend: Backend) -> None:
    assert backend.migrate() == []


def test_insert_and_reserve_in_strict_queue_order(backend: Backend) -> None:
    backend.jobs_insert([job(1, "low"), job(2, "normal"), job(3, "high"), job(4, "high")])
    got = backend.jobs_reserve(["high", "normal", "low"], 10, LEASE, "w1", T0 + 1)
    assert ids(got) == [job(3).id, job(4).id, job(2).id, job(1).id]
    first = got[0]
    assert first.queue == "high" and first.name == "app.job" and first.attempts == 1
    assert first.token and first.lease_expires_at == pytest.approx(T0 + 1 + LEASE)
    assert first.payload == job(3).payload and first.max_tries == 3


def test_reserve_respects_limit_and_fifo_by_available_at(backend: Backend) -> None:
    backend.jobs_insert([job(1, at=T0 + 2), job(2, at=T0), job(3, at=T0 + 1)])
    got = backend.jobs_reserve(["default"], 2, LEASE, "w1", T0 + 5)
    assert ids(got) == [job(2).id, job(3).id]
    rest = backend.jobs_reserve(["default"], 2, LEASE, "w1", T0 + 5)
    assert ids(rest) == [job(1).id]
    assert backend.jobs_reserve(["default"], 2, LEASE, "w1", T0 + 5) == []


def test_scheduled_job_waits_for_available_at(backend: Backend) -> None:
    backend.jobs_insert([job(1, at=T0 + 60)])
    assert backend.jobs_reserve(["default"], 1, LEASE, "w1", T0) == []
    stats = {s.queue: s for s in backend.queue_stats(T0)}
    assert stats["default"].scheduled == 1 and stats["default"].available == 0
    assert ids(backend.jobs_reserve(["default"], 1, LEASE, "w1", T0 + 60)) == [job(1).id]


def test_reserve_ignores_other_queues_and_zero_limit(backend: Backend) -> None:
    backend.jobs_insert([job(1, "other")])
    assert backend.jobs_reserve(["default"], 5, LEASE, "w1", T0) == []
    assert backend.jobs_reserve(["other"], 0, LEASE, "w1", T0) == []
    assert backend.jobs_reserve([], 5, LEASE, "w1", T0) == []


def test_complete_is_token_checked(backend: Backend) -> None:
    backend.jobs_insert([job(1)])
    (r,) = backend.jobs_reserve(["default"], 1, LEASE, "w1", T0)
    assert backend.jobs_complete([Lease(r.id, "not-the-token")]) == 0
    assert backend.jobs_get(r.id) is not None
    assert backend.jobs_complete([r.lease]) == 1
    assert backend.jobs_get(r.id) is None
    assert backend.jobs_complete([r.lease]) == 0


def test_release_puts_back_with_attempt_counted(backend: Backend) -> None:
    backend.jobs_insert([job(1)])
    (r,) = backend.jobs_reserve(["default"], 1, LEASE, "w1", T0)
    assert backend.jobs_release([Release(r.id, "stale", T0)]) == 0
    assert backend.jobs_release([Release(r.id, r.token, T0 + 10)]) == 1
    assert backend.jobs_reserve(["default"], 1, LEASE, "w1", T0 + 5) == []
    (again,) = backend.jobs_reserve(["default"], 1, LEASE, "w1", T0 + 10)
    assert again.attempts == 2 and again.token != r.token
    assert backend.jobs_complete([r.lease]) == 0  # the first token is dead


def test_fail_moves_to_failed_store(backend: Backend) -> None:
    backend.jobs_insert([job(1, "emails")])
    (r,) = backend.jobs_reserve(["emails"], 1, LEASE, "w1", T0)
    assert backend.jobs_fail([Failure(r.id, "stale", "x", T0)]) == 0
    assert backend.jobs_fail([Failure(r.id, r.token, "Traceback…\nValueError: boom", T0 + 1)]) == 1
    assert backend.jobs_get(r.id) is None
    record = backend.failed_get(r.id)
    assert record is not None
    assert record.queue == "emails" and record.name == "app.job"
    assert record.payload == job(1).payload and record.attempts == 1
    assert record.exception.endswith("ValueError: boom") and record.summary == "ValueError: boom"
    assert record.failed_at == pytest.approx(T0 + 1)
    assert "***" in record.connection or "@" not in record.connection


def test_extend_lease_reports_what_is_still_held(backend: Backend) -> None:
    backend.jobs_insert([job(1), job(2)])
    a, b = backend.jobs_reserve(["default"], 2, LEASE, "w1", T0)
    held = backend.jobs_extend_lease([a.lease, Lease(b.id, "stale")], LEASE, T0 + 20)
    assert held == [a.id]
    # a's lease now runs to T0+50, b's still to T0+30
    result = backend.jobs_recover_expired(T0 + 40, default_tries=3)
    assert result.released == [b.id] and result.failed == []


def test_recover_expired_counts_the_attempt_and_fails_when_exhausted(backend: Backend) -> None:
    backend.jobs_insert([job(1, tries=2), job(2, tries=None)])
    first = backend.jobs_reserve(["default"], 2, LEASE, "dead", T0)
    result = backend.jobs_recover_expired(T0 + LEASE + 1, default_tries=1)
    assert sorted(result.released) == [job(1).id]
    assert result.failed == [job(2).id]
    lost = backend.failed_get(job(2).id)
    assert lost is not None and "worker lost" in lost.exception
    (again,) = backend.jobs_reserve(["default"], 1, LEASE, "w2", T0 + LEASE + 1)
    assert again.id == job(1).id and again.attempts == 2
    # the dead worker wakes up: none of its transitions may touch the job now
    stale = next(r for r in first if r.id == job(1).id)
    assert backend.jobs_complete([stale.lease]) == 0
    assert backend.jobs_release([Release(stale.id, stale.token, T0)]) == 0
    assert backend.jobs_fail([Failure(stale.id, stale.token, "x", T0)]) == 0
    assert backend.jobs_extend_lease([stale.lease], LEASE, T0 + 40) == []
    assert backend.jobs_get(job(1).id) is not None
    backend.jobs_recover_expired(T0 + 2 * LEASE + 2, default_tries=1)
    lost1 = backend.failed_get(job(1).id)
    assert lost1 is not None and lost1.attempts == 2


def test_recover_leaves_live_leases_alone(backend: Backend) -> None:
    backend.jobs_insert([job(1)])
    backend.jobs_reserve(["default"], 1, LEASE, "w1", T0)
    result = backend.jobs_recover_expired(T0 + LEASE - 1, default_tries=3)
    assert result.released == [] and result.failed == []


def _fail_one(backend: Backend, n: int, queue: str = "default", at: float = T0) -> str:
    backend.jobs_insert([job(n, queue, at=at)])
    (r,) = backend.jobs_reserve([queue], 1, LEASE, "w1", at)
    backend.jobs_fail([Failure(r.id, r.token, f"RuntimeError: {n}", at)])
    return r.id


def test_failed_list_retry_forget_flush(backend: Backend) -> None:
    a = _fail_one(backend, 1, "emails", T0)
    b = _fail_one(backend, 2, "emails", T0 + 10)
    c = _fail_one(backend, 3, "data", T0 + 20)
    assert ids(backend.failed_list()) == [c, b, a]
    assert ids(backend.failed_list(queue="emails")) == [b, a]
    assert ids(backend.failed_list(limit=1, offset=1)) == [b]
    assert backend.failed_get("nope") is None
    # retry one: a fresh attempt count, failed row gone, job waiting again
    assert backend.failed_retry([a, "missing"], T0 + 30) == [a]
    assert backend.failed_get(a) is None
    (r,) = backend.jobs_reserve(["emails"], 5, LEASE, "w1", T0 + 30)
    assert r.id == a and r.attempts == 1 and r.payload == job(1).payload
    # retry by queue
    assert backend.failed_retry(None, T0 + 31, queue="data") == [c]
    assert ids(backend.failed_list()) == [b]
    assert backend.failed_forget(b) is True and backend.failed_forget(b) is False
    d = _fail_one(backend, 4, "x", T0 + 100)
    e = _fail_one(backend, 5, "x", T0 + 200)
    assert backend.failed_flush(older_than=T0 + 150) == 1
    assert ids(backend.failed_list()) == [e]
    assert d not in ids(backend.failed_list())
    assert backend.failed_flush() == 1 and backend.failed_list() == []


def test_retry_all(backend: Backend) -> None:
    failed = {_fail_one(backend, n, "q") for n in range(1, 4)}
    assert set(backend.failed_retry(None, T0 + 1)) == failed
    assert backend.failed_list() == []
    assert len(backend.jobs_reserve(["q"], 10, LEASE, "w", T0 + 1)) == 3


def test_pause_and_resume(backend: Backend) -> None:
    backend.jobs_insert([job(1, "a"), job(2, "b")])
    backend.queue_pause("a")
    assert backend.queues_paused() == {"a"}
    assert ids(backend.jobs_reserve(["a", "b"], 5, LEASE, "w", T0)) == [job(2).id]
    stats = {s.queue: s for s in backend.queue_stats(T0)}
    assert stats["a"].paused and not stats["b"].paused
    backend.queue_resume("a")
    assert backend.queues_paused() == set()
    assert ids(backend.jobs_reserve(["a", "b"], 5, LEASE, "w", T0)) == [job(1).id]


def test_clear_deletes_only_waiting_jobs(backend: Backend) -> None:
    backend.jobs_insert([job(1, "a"), job(2, "a"), job(3, "a", at=T0 + 99), job(4, "b")])
    (running,) = backend.jobs_reserve(["a"], 1, LEASE, "w", T0)
    assert backend.queue_clear(["a"]) == 2
    assert backend.jobs_get(running.id) is not None
    assert backend.jobs_get(job(4).id) is not None
    assert backend.jobs_complete([running.lease]) == 1


def test_queue_stats(backend: Backend) -> None:
    _fail_one(backend, 5, "a", T0 - 100)
    backend.jobs_insert([job(1, "a", at=T0 - 10), job(2, "a", at=T0 - 5), job(3, "a", at=T0 + 50),
                         job(4, "a", at=T0 - 1)])
    backend.jobs_reserve(["a"], 1, LEASE, "w", T0)  # takes job 1
    (s,) = [s for s in backend.queue_stats(T0) if s.queue == "a"]
    assert (s.available, s.scheduled, s.running, s.failed) == (2, 1, 1, 1)
    assert s.oldest_age(T0) == pytest.approx(5.0)


def test_restart_signal(backend: Backend) -> None:
    assert backend.restart_signal_read() is None
    backend.restart_signal_write(T0 + 1.5)
    assert backend.restart_signal_read() == pytest.approx(T0 + 1.5)
    backend.restart_signal_write(T0 + 2.5)
    assert backend.restart_signal_read() == pytest.approx(T0 + 2.5)


def test_worker_registry(backend: Backend) -> None:
    w = WorkerInfo(name="host:1:ab", host="host", pid=1, queues=["a", "b"], concurrency=4,
                   started_at=T0, last_heartbeat=T0, info={"processed": 0})
    backend.worker_register(w)
    w.last_heartbeat, w.info = T0 + 10, {"processed": 7}
    backend.worker_heartbeat(w)
    (got,) = backend.worker_list()
    assert got.name == w.name and got.queues == ["a", "b"] and got.concurrency == 4
    assert got.last_heartbeat == pytest.approx(T0 + 10) and got.info["processed"] == 7
    backend.worker_remove(w.name)
    assert backend.worker_list() == []


def test_jobs_get(backend: Backend) -> None:
    backend.jobs_insert([job(1, "a", at=T0 + 5)])
    got = backend.jobs_get(job(1).id)
    assert got is not None and got.queue == "a" and got.attempts == 0 and got.token == ""
    assert backend.jobs_get("missing") is None


def test_insert_is_all_or_nothing(backend: Backend) -> None:
    backend.jobs_insert([job(1)])
    with pytest.raises(Exception):  # noqa: B017 - each store raises its own StoreError
        backend.jobs_insert([job(2), job(1)])  # duplicate id in the batch
    assert backend.jobs_get(job(2).id) is None


def test_wait_for_jobs_wakes_on_insert_from_another_client(
        backend: Backend, other_backend: Backend) -> None:
    backend.jobs_reserve(["default"], 1, LEASE, "w", T0)  # open connections first
    backend.wait_for_jobs(["default"], 0.0)  # the first call may wake at once: set a baseline
    assert backend.wait_for_jobs(["default"], 0.2) is False  # nothing happened
    woken: list[bool] = []
    started = threading.Event()

    def wait() -> None:
        started.set()
        woken.append(backend.wait_for_jobs(["default"], 10.0))

    thread = threading.Thread(target=wait)
    thread.start()
    started.wait(5)
    other_backend.jobs_insert([job(1)])
    thread.join(15)
    assert woken == [True]


def test_concurrent_reservers_never_share_a_job(backend: Backend, other_backend: Backend) -> None:
    backend.jobs_insert([job(n) for n in range(300)])
    seen: list[list[str]] = [[], []]

    def drain(b: Backend, out: list[str]) -> None:
        while True:
            got = b.jobs_reserve(["default"], 7, LEASE, "w", T0)
            if not got:
                return
            out.extend(ids(got))
            b.jobs_complete([r.lease for r in got])

    threads = [threading.Thread(target=drain, args=(b, out))
               for b, out in ((backend, seen[0]), (other_backend, seen[1]))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    everything = seen[0] + seen[1]
    assert len(everything) == 300 and len(set(everything)) == 300


def test_metrics_upsert_read_prune(backend: Backend) -> None:
    from conveyor.records import RUNTIME_BUCKETS, MetricSample

    minute = int(T0 // 60 * 60)
    a = MetricSample(minute, "emails", "app.send", "w1", processed=3, failed=1, released=1,
                     timed_out=1, runtime_sum=0.5, runtime_max=0.3, wait_sum=1.5, wait_max=1.0)
    a.histogram[2] = 3
    b = MetricSample(minute, "emails", "app.send", "w2", processed=2)
    old = MetricSample(minute - 3600, "emails", "app.send", "w1", processed=9)
    backend.metrics_record([a, b, old])
    a.processed, a.histogram[2] = 5, 5  # the worker rewrites its whole row
    backend.metrics_record([a])
    got = backend.metrics_read(minute)
    assert [(s.worker, s.processed) for s in got] == [("w1", 5), ("w2", 2)]
    first = got[0]
    assert (first.failed, first.released, first.timed_out) == (1, 1, 1)
    assert first.runtime_sum == pytest.approx(0.5) and first.wait_max == pytest.approx(1.0)
    assert len(first.histogram) == len(RUNTIME_BUCKETS) + 1 and first.histogram[2] == 5
    assert len(backend.metrics_read(minute - 3600, minute)) == 1
    assert backend.metrics_prune(minute) == 1
    assert len(backend.metrics_read(0)) == 2


def test_store_risks_is_optional_and_a_list_of_sentences(backend: Backend) -> None:
    risks = getattr(backend, "store_risks", None)  # optional protocol method
    if risks is not None:
        found = risks()
        assert isinstance(found, list) and all(isinstance(r, str) and r for r in found)


def test_ack_and_reserve_in_one_call(backend: Backend) -> None:
    backend.jobs_insert([job(n) for n in range(1, 6)])
    a, b, c = backend.jobs_reserve(["default"], 3, LEASE, "w1", T0)
    got = backend.jobs_ack_and_reserve(
        [a.lease, Lease(b.id, "stale")], [Release(c.id, c.token, T0 + 100)],
        [], ["default"], 5, LEASE, "w1", T0 + 1)
    assert ids(got) == [job(4).id, job(5).id]  # c waits until T0+100
    assert backend.jobs_get(a.id) is None  # completed
    assert backend.jobs_get(b.id) is not None  # the stale token changed nothing
    d, e = got
    assert backend.jobs_ack_and_reserve([], [], [Failure(d.id, d.token, "E: x", T0 + 2)],
                                        ["default"], 0, LEASE, "w1", T0 + 2) == []
    failed = backend.failed_get(d.id)
    assert failed is not None and failed.summary == "E: x"
    # completes only (a store may take a shorter way): the fence holds there too
    again = backend.jobs_ack_and_reserve([e.lease, Lease(b.id, "stale")], [], [],
                                         ["default"], 5, LEASE, "w1", T0 + 100)
    assert ids(again) == [c.id] and again[0].attempts == 2  # released c is due now
    assert backend.jobs_get(e.id) is None
    assert backend.jobs_get(b.id) is not None
