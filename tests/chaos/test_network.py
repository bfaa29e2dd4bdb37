"""Network faults between `conveyor work` processes and a server store, injected by
``conveyor.testing.proxy.FaultProxy``: added latency, connections cut (and refused for a
while), connections held half-open; the workers carry on, nothing is lost, a run twice is
explained by a lease the worker could not renew, and a dead listener is replaced."""

from __future__ import annotations

import random
import time
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..integration.helpers import stop, wait_until
from .analysis import Fates, judge, parse
from .pool import TailLedger, WorkerPool
from .stores import ChaosTarget

LEASE = 2.0


@pytest.fixture
def app(proxied: ChaosTarget) -> Conveyor:
    from tests.apps import basic

    return proxied.use(basic.app)


def run(app: Conveyor, target: ChaosTarget, tmp_path: Path, jobs: int, fault: str) -> Fates:
    """Dispatch ``jobs`` chaos jobs to two workers, inject ``fault`` once they are busy,
    wait for every job to settle, and judge the ledger."""
    job = app.get_job("chaos")
    ids = app.dispatch_many([job.prepare(n, 0.005, "ok") for n in range(jobs)])
    ledger = TailLedger(tmp_path / "ledger.txt")
    pool = WorkerPool(target, ledger, tmp_path / "logs", 2,
                      ["--queue", "default", "--concurrency", "4", "--lease", str(LEASE),
                       "--sleep", "0.5"], random.Random(1))
    proxy = target.proxy
    pool.fill()
    try:
        wait_until(lambda: ledger.poll() >= jobs // 4, timeout=60, what="progress")
        if fault == "latency":
            proxy.latency(0.02)
        elif fault == "cut":
            proxy.cut(refuse_for=2.0)
        elif fault == "hold":  # half-open past the lease, then the connections reset
            # every worker loses the store for two leases, whether or not an error reaches
            # its log (a retry on a fresh connection may hide it): their leases may lapse
            pool.fates.troubled.update(p.pid for p in pool.running)
            proxy.hold()
            until = time.monotonic() + 2 * LEASE
            wait_until(lambda: time.monotonic() >= until, what="the leases to expire")
            proxy.cut(refuse_for=0.5)
            proxy.heal()
        wait_until(lambda: all(app.backend.jobs_get(i) is None for i in ids[-20:])
                   and _pending(app) == 0, timeout=120, what="every job to settle")
    finally:
        proxy.heal()
        pool.stop_all()
    pool.note_trouble()
    planned = {str(n): (job_id, "ok") for n, job_id in enumerate(ids)}
    failed = {r.id: r for r in app.backend.failed_list(limit=jobs)}
    still = {i for i in ids if app.backend.jobs_get(i) is not None}
    verdict = judge(planned, parse(ledger.lines()), failed, still, pool.fates)
    assert not verdict.problems, "\n".join(verdict.problems[:10]) + pool.log_text()
    assert verdict.completed == jobs and verdict.lost == 0
    assert all(p.returncode == 0 for p in pool.exited), pool.log_text()
    return pool.fates


def _pending(app: Conveyor) -> int:
    return sum(s.available + s.scheduled + s.running
               for s in app.backend.queue_stats(time.time()))


@pytest.mark.chaos
def test_latency_slows_workers_down_and_nothing_else(
        app: Conveyor, proxied: ChaosTarget, tmp_path: Path) -> None:
    fates = run(app, proxied, tmp_path, 400, "latency")
    assert not fates.troubled  # 20 ms per hop is no fault


@pytest.mark.chaos
def test_cut_connections_are_reopened(app: Conveyor, proxied: ChaosTarget,
                                      tmp_path: Path) -> None:
    connections = proxied.proxy.connections
    run(app, proxied, tmp_path, 600, "cut")
    # they connected again (whether a worker logs the cut depends on where it fell: a call
    # that fails on its own connection is sent again through the pool, with backoff)
    assert proxied.proxy.connections > connections + 2


@pytest.mark.chaos
def test_half_open_connections_past_the_lease(app: Conveyor, proxied: ChaosTarget,
                                              tmp_path: Path) -> None:
    run(app, proxied, tmp_path, 600, "hold")


@pytest.mark.chaos
def test_a_dead_listener_is_replaced(app: Conveyor, proxied: ChaosTarget,
                                     tmp_path: Path) -> None:
    if proxied.listeners is None:
        pytest.skip(f"{proxied.name} has no listener: its workers poll")
    ledger = TailLedger(tmp_path / "ledger.txt")
    pool = WorkerPool(proxied, ledger, tmp_path / "logs", 1,
                      ["--queue", "default", "--lease", str(LEASE), "--sleep", "0.5"],
                      random.Random(1))
    pool.fill()
    try:
        first = wait_until_value(proxied.listeners, "a listener")
        proxied.proxy.cut(refuse_for=1.0)
        second = wait_until_value(lambda: proxied.listeners() - first,  # type: ignore[misc]
                                  "a new listener")
        assert not first & second
        job_id = app.get_job("noop").dispatch(1)
        wait_until(lambda: app.backend.jobs_get(job_id) is None, what="the job to run")
    finally:
        code, _ = stop(pool.running[0]) if pool.running else (0, "")
    assert code == 0
    assert ledger.count("done") == {"1": 1}


def wait_until_value(probe: object, what: str) -> set[object]:
    found: list[set[object]] = []

    def check() -> bool:
        value = probe()  # type: ignore[operator]
        if value:
            found.append(value)
        return bool(value)

    wait_until(check, timeout=30, what=what)
    return found[-1]
