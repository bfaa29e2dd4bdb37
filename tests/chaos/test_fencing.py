"""Fencing and heartbeats with real processes, on every store:

* a worker stopped past its lease (SIGSTOP) that resumes and finishes cannot complete the
  job that now belongs to another worker (its token is stale);
* a job running five times its lease is never handed to a second worker while the first
  one is alive: heartbeats keep extending the lease.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..integration.helpers import Ledger, start_worker, stop, wait_until
from .stores import ChaosTarget


def started(ledger: Ledger, tag: str, attempt: int, pid: int) -> bool:
    return ("start", tag, attempt, pid) in ledger.lines()


def worker(target: ChaosTarget, ledger: Ledger, lease: float, log: Path,
           concurrency: int = 1) -> subprocess.Popen[str]:
    return start_worker(target.url, ledger.path, "--queue", "default", "--lease", str(lease),
                        "--concurrency", str(concurrency), "--sleep", "0.2", log=log,
                        **target.env())


@pytest.fixture
def app(target: ChaosTarget) -> Conveyor:
    from tests.apps import basic

    return target.use(basic.app)


@pytest.mark.chaos
def test_a_worker_stopped_past_its_lease_cannot_complete_the_job(
        app: Conveyor, target: ChaosTarget, tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.txt")
    gate = str(tmp_path / "gate")
    (job_id,) = app.dispatch_many([app.get_job("gated").prepare(1, gate)])
    first = worker(target, ledger, 1, tmp_path / "first.log")
    second = None
    try:
        wait_until(lambda: started(ledger, "1", 1, first.pid), what="attempt 1 to start")
        second = worker(target, ledger, 1, tmp_path / "second.log")
        for _ in range(3):
            os.kill(first.pid, signal.SIGSTOP)
            try:  # the lease expires; the second worker recovers and re-runs the job
                wait_until(lambda: started(ledger, "1", 2, second.pid), timeout=15,
                           what="attempt 2 on the second worker")
                break
            except AssertionError:
                # SQLite: the first worker was stopped inside a write transaction, which
                # stalls every writer. Let it go and try again.
                os.kill(first.pid, signal.SIGCONT)
                time.sleep(0.1)  # let the resumed process commit
        else:
            pytest.fail("the stopped worker's job was never taken over")
        Path(f"{gate}.1").touch()  # the stale attempt may now finish...
        os.kill(first.pid, signal.SIGCONT)
        wait_until(lambda: ("done", "1", 1, first.pid) in ledger.lines(), what="attempt 1")
        code, _ = stop(first)  # ...and flushes its acks before exiting
        assert code == 0
        job = app.backend.jobs_get(job_id)  # its stale ack changed nothing
        assert job is not None and job.attempts == 2 and job.token, job
        Path(f"{gate}.2").touch()
        wait_until(lambda: app.backend.jobs_get(job_id) is None, what="attempt 2 to complete")
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.kill(process.pid, signal.SIGCONT)
                stop(process)
    assert [(e, a) for e, t, a, _ in ledger.lines() if t == "1"] == [
        ("start", 1), ("start", 2), ("done", 1), ("done", 2)]
    assert app.backend.failed_get(job_id) is None


@pytest.mark.chaos
def test_a_job_five_times_its_lease_runs_once(
        app: Conveyor, target: ChaosTarget, tmp_path: Path) -> None:
    lease = 1.5
    ledger = Ledger(tmp_path / "ledger.txt")
    ids = app.dispatch_many([app.get_job("slow").prepare(n, 5 * lease) for n in range(2)])
    # three live workers that recover expired leases every lease: two run the long jobs,
    # the third would take over any lease left to expire
    workers = [worker(target, ledger, lease, tmp_path / f"w{i}.log") for i in range(3)]
    try:
        wait_until(lambda: all(app.backend.jobs_get(i) is None for i in ids), timeout=60,
                   what="the long jobs to finish")
    finally:
        codes = [stop(w)[0] for w in workers]
    assert codes == [0, 0, 0]
    lines = ledger.lines()
    for tag in ("0", "1"):
        runs = [(event, attempt) for event, t, attempt, _ in lines if t == tag]
        assert runs == [("start", 1), ("done", 1)], lines
