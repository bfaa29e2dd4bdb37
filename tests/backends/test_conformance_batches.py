"""Conformance of the batch protocol (``batch_*``, ``jobs_insert_once``), every store."""

from __future__ import annotations

import threading

import pytest

from conveyor.backends import Backend
from conveyor.records import BatchMark, BatchOutcome, NewBatch, NewJob

from .test_conformance import LEASE, T0, ids, job

OK, FAILED, CANCELLED = BatchOutcome.SUCCEEDED, BatchOutcome.FAILED, BatchOutcome.CANCELLED


@pytest.fixture(autouse=True)
def _needs_batches(backend: Backend) -> None:
    if not backend.capabilities.batches:
        pytest.skip(f"{type(backend).__name__} here has capabilities.batches = False")


def batch_job(n: int, batch: str, queue: str = "default") -> NewJob:
    record = job(n, queue)
    record.batch_id = batch
    return record


def new_batch(backend: Backend, batch: str, n: int, at: float = T0) -> list[NewJob]:
    jobs = [batch_job(i, batch) for i in range(1, n + 1)]
    record = backend.batch_create(NewBatch(batch, f"name-{batch}", '{"k": 1}', at), jobs)
    assert (record.total_jobs, record.pending_jobs, record.failed_jobs) == (n, n, 0)
    return jobs


def mark(batch: str, n: int, outcome: BatchOutcome) -> BatchMark:
    return BatchMark(batch, job(n).id, outcome)


def test_create_inserts_batch_and_jobs(backend: Backend) -> None:
    jobs = new_batch(backend, "b1", 3)
    got = backend.batch_get("b1")
    assert got is not None and got.name == "name-b1" and got.options == '{"k": 1}'
    assert got.created_at == pytest.approx(T0) and got.failed_job_ids == []
    assert got.cancelled_at is None and got.finished_at is None and got.progress == 0
    reserved = backend.jobs_reserve(["default"], 10, LEASE, "w", T0)
    assert sorted(ids(reserved)) == sorted(ids(jobs))
    assert {r.batch_id for r in reserved} == {"b1"}
    assert backend.batch_get("missing") is None


def test_create_is_all_or_nothing(backend: Backend) -> None:
    backend.jobs_insert([job(2)])
    with pytest.raises(Exception):  # noqa: B017 - each store raises its own StoreError
        backend.batch_create(NewBatch("b1", "x", "{}", T0), [batch_job(1, "b1"),
                                                             batch_job(2, "b1")])
    assert backend.batch_get("b1") is None
    assert backend.jobs_get(job(1).id) is None


def test_record_counts_each_job_once(backend: Backend) -> None:
    new_batch(backend, "b1", 4)
    got = backend.batch_record([mark("b1", 1, OK), mark("b1", 1, OK)], T0 + 1)["b1"]
    assert (got.pending_jobs, got.failed_jobs, got.progress) == (3, 0, 25)
    got = backend.batch_record([mark("b1", 2, FAILED)], T0 + 2)["b1"]
    assert (got.pending_jobs, got.failed_jobs) == (3, 1)
    assert got.failed_job_ids == [job(2).id]
    # repeats: a re-run after a worker death changes nothing
    got = backend.batch_record([mark("b1", 2, FAILED), mark("b1", 1, FAILED),
                                mark("b1", 1, CANCELLED)], T0 + 3)["b1"]
    assert (got.pending_jobs, got.failed_jobs) == (3, 1)
    got = backend.batch_record([mark("b1", 3, CANCELLED)], T0 + 4)["b1"]
    assert (got.pending_jobs, got.failed_jobs, got.finished_at) == (2, 1, None)
    got = backend.batch_record([mark("b1", 4, OK)], T0 + 5)["b1"]
    # every job ran once: finished, though one failed
    assert (got.pending_jobs, got.failed_jobs) == (1, 1)
    assert got.finished_at == pytest.approx(T0 + 5)
    # a retry of the failed job succeeds: the batch becomes fully successful
    got = backend.batch_record([mark("b1", 2, OK)], T0 + 6)["b1"]
    assert (got.pending_jobs, got.failed_jobs, got.failed_job_ids) == (0, 0, [])
    assert got.finished_at == pytest.approx(T0 + 5) and got.progress == 100


def test_record_ignores_unknown_batches_and_non_members(backend: Backend) -> None:
    new_batch(backend, "b1", 2)
    got = backend.batch_record([BatchMark("b1", "not-a-member", OK),
                                BatchMark("nope", job(1).id, OK)], T0)
    assert "nope" not in got
    assert got["b1"].pending_jobs == 2
    assert backend.batch_record([], T0) == {}


def test_record_many_batches_at_once(backend: Backend) -> None:
    new_batch(backend, "b1", 2)
    backend.batch_create(NewBatch("b2", "two", "{}", T0), [batch_job(7, "b2")])
    got = backend.batch_record([mark("b1", 1, OK), mark("b2", 7, FAILED), mark("b1", 2, OK)],
                               T0 + 1)
    assert got["b1"].pending_jobs == 0 and got["b1"].finished_at is not None
    assert got["b2"].failed_job_ids == [job(7).id] and got["b2"].all_ran


def test_add_is_idempotent_by_job_id(backend: Backend) -> None:
    new_batch(backend, "b1", 1)
    assert backend.batch_add("b1", [batch_job(5, "b1"), batch_job(6, "b1")]) == 2
    assert backend.batch_add("b1", [batch_job(5, "b1")]) == 0
    got = backend.batch_get("b1")
    assert got is not None and (got.total_jobs, got.pending_jobs) == (3, 3)
    assert backend.jobs_get(job(5).id) is not None
    from conveyor.errors import NotFound

    with pytest.raises(NotFound):
        backend.batch_add("missing", [batch_job(9, "missing")])
    assert backend.jobs_get(job(9).id) is None


def test_cancel_list_and_prune(backend: Backend) -> None:
    new_batch(backend, "b1", 1, at=T0)
    backend.batch_create(NewBatch("b2", "two", "{}", T0 + 10), [batch_job(2, "b2")])
    backend.batch_create(NewBatch("b3", "three", "{}", T0 + 20), [])
    assert [b.id for b in backend.batch_list()] == ["b3", "b2", "b1"]
    assert [b.id for b in backend.batch_list(limit=1, offset=1)] == ["b2"]
    assert backend.batch_cancel("b2", T0 + 30) is True
    assert backend.batch_cancel("b2", T0 + 40) is True  # stays at the first time
    got = backend.batch_get("b2")
    assert got is not None and got.cancelled_at == pytest.approx(T0 + 30) and got.cancelled
    assert backend.batch_cancel("missing", T0) is False
    backend.batch_record([mark("b1", 1, OK)], T0 + 50)
    backend.batch_record([mark("b2", 2, CANCELLED)], T0 + 100)
    assert backend.batch_prune(T0 + 60) == 1  # b1 finished at T0+50; b2 too recent
    assert [b.id for b in backend.batch_list()] == ["b3", "b2"]
    assert backend.batch_prune(T0 + 200) == 1
    assert backend.batch_get("b2") is None


def test_insert_once_remembers_keys_after_the_job_is_gone(backend: Backend) -> None:
    assert backend.jobs_insert_once("batch:b1:then", [job(1)], T0) is True
    assert backend.jobs_insert_once("batch:b1:then", [job(2)], T0) is False
    assert backend.jobs_get(job(2).id) is None
    (r,) = backend.jobs_reserve(["default"], 5, LEASE, "w", T0)
    backend.jobs_complete([r.lease])
    assert backend.jobs_insert_once("batch:b1:then", [job(1)], T0 + 1) is False
    assert backend.jobs_get(job(1).id) is None
    assert backend.batch_prune(T0 + 10) == 0  # keys older than the cutoff are forgotten
    assert backend.jobs_insert_once("batch:b1:then", [job(3)], T0 + 20) is True


def test_concurrent_records_count_exactly(backend: Backend, other_backend: Backend) -> None:
    n = 200
    new_batch(backend, "b1", n)
    finished_seen: list[int] = []

    def record(b: Backend, numbers: range) -> None:
        for i in numbers:
            # every job recorded twice, by two clients: still counted once
            got = b.batch_record([mark("b1", i, OK)], T0 + 1)["b1"]
            if got.finished_at is not None:
                finished_seen.append(i)

    threads = [threading.Thread(target=record, args=(b, range(1, n + 1)))
               for b in (backend, other_backend)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    got = backend.batch_get("b1")
    assert got is not None and (got.pending_jobs, got.failed_jobs) == (0, 0)
    assert got.finished_at is not None and finished_seen


def test_concurrent_insert_once_inserts_once(backend: Backend, other_backend: Backend) -> None:
    wins: list[bool] = []
    barrier = threading.Barrier(2)

    def fire(b: Backend, n: int) -> None:
        barrier.wait(10)
        wins.append(b.jobs_insert_once("chain:x:next", [job(n)], T0))

    threads = [threading.Thread(target=fire, args=(b, n))
               for b, n in ((backend, 1), (other_backend, 2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(wins) == [False, True]
    assert len(backend.jobs_reserve(["default"], 5, LEASE, "w", T0)) == 1
