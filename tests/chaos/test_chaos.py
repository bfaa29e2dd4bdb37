"""The chaos run: thousands of jobs through four `conveyor work` processes while workers are
SIGKILLed, SIGTERMed and SIGSTOPped past their lease, and (where the store allows) the store
is restarted or its connections cut. Then every execution in the ledger is explained.

Short profile by default (CI); ``CONVEYOR_CHAOS=long`` for the figures in
docs/reliability.md; ``CONVEYOR_CHAOS_SEED`` replays a run's choices.
"""

from __future__ import annotations

import itertools
import os
import random
import signal
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from conveyor import Conveyor

from ..integration.helpers import wait_until
from .analysis import judge, parse
from .pool import TailLedger, WorkerPool
from .stores import ChaosTarget


@dataclass(frozen=True)
class Profile:
    jobs: int
    waves: int
    workers: int = 4
    concurrency: int = 4
    lease: float = 2.0


PROFILES = {"short": Profile(jobs=3000, waves=10), "long": Profile(jobs=20000, waves=40)}
# read at import: the suite's autouse fixture clears CONVEYOR_* variables before each test
PROFILE_NAME = os.environ.get("CONVEYOR_CHAOS", "short")
PROFILE = PROFILES[PROFILE_NAME]
SEED = os.environ.get("CONVEYOR_CHAOS_SEED")
REPORT = os.environ.get("CONVEYOR_CHAOS_REPORT")
FAULTS = ("kill", "stop", "store", "term", "kill", "store")


def kind_of(n: int) -> str:
    if n % 50 == 7:
        return "fail"  # raises Fail: must end in the failed store, once
    if n % 20 == 3:
        return "flaky"  # raises on attempt 1: one counted retry
    return "ok"


def seconds_of(n: int) -> float:
    return (n * 7919 % 11) / 1000  # 0-10 ms: long enough that kills catch jobs mid-run


def pending(app: Conveyor) -> int:
    return sum(s.available + s.scheduled + s.running
               for s in app.backend.queue_stats(time.time()))


@pytest.mark.chaos
@pytest.mark.timeout(3 * 3600 if PROFILE_NAME == "long" else 300)
def test_chaos(target: ChaosTarget, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.apps import basic

    profile = PROFILE
    seed = int(SEED or random.randrange(1 << 30))
    rng = random.Random(seed)
    app = target.use(basic.app)
    job = app.get_job("chaos")
    ledger = TailLedger(tmp_path / "ledger.txt")
    pool = WorkerPool(target, ledger, tmp_path / "logs", profile.workers,
                      ["--queue", "default", "--concurrency", str(profile.concurrency),
                       "--lease", str(profile.lease), "--sleep", "0.5", "--grace", "20",
                       "--quiet"], rng)
    planned: dict[str, tuple[str, str]] = {}
    faults = itertools.cycle(FAULTS)
    wave = profile.jobs // profile.waves
    started = time.monotonic()
    pool.fill()
    try:
        for first in range(0, profile.jobs, wave):
            tags = range(first, min(first + wave, profile.jobs))
            ids = app.dispatch_many([job.prepare(n, seconds_of(n), kind_of(n)) for n in tags])
            planned.update({str(n): (job_id, kind_of(n)) for n, job_id in zip(tags, ids,
                                                                             strict=True)})
            mark = ledger.poll()
            wait_until(lambda mark=mark: ledger.poll() >= mark + min(wave, 150), timeout=60,
                       what="the workers to make progress")
            pool.fill()
            fault = next(faults)
            if fault == "store" and target.restart is not None:
                target.restart()
                pool.counts["store restarts"] += 1
            elif fault == "store" and target.proxy is not None:
                target.proxy.cut(refuse_for=1.0)
                pool.counts["connection cuts"] += 1
            elif fault in ("kill", "store"):
                pool.kill()
            elif fault == "term":
                pool.term()
            else:
                pool.stop_past_lease(profile.lease)
        wait_until(lambda: pending(app) == 0, timeout=240, what="every job to settle")
    finally:
        pool.stop_all()
    elapsed = time.monotonic() - started
    pool.note_trouble()
    ledger.poll()

    failed = {r.id: r for r in app.backend.failed_list(limit=profile.jobs + 1)}
    still = {job_id for job_id, _ in planned.values() if app.backend.jobs_get(job_id)}
    verdict = judge(planned, parse(ledger.lines()), failed, still, pool.fates)
    faults_line = " ".join(f"{k.replace(' ', '-')}={v}" for k, v in sorted(pool.counts.items()))
    line = (f"chaos[{target.name}/{PROFILE_NAME}] seed={seed} {faults_line} "
            f"{verdict.summary()} elapsed={elapsed:.0f}s")
    with capsys.disabled():
        print("\n" + line)
    if REPORT:
        with open(REPORT, "a") as handle:
            handle.write(line + "\n")

    assert not verdict.problems, "\n".join(verdict.problems[:20]) + "\n" + pool.log_text()
    assert verdict.lost == 0
    assert verdict.completed + verdict.failed_as_planned + verdict.worker_lost == profile.jobs
    assert verdict.failed_as_planned + verdict.worker_lost == len(failed)
    expected_fail = sum(1 for n in range(profile.jobs) if kind_of(n) == "fail")
    assert verdict.failed_as_planned == expected_fail
    # a worker told to stop finished its jobs and exited cleanly; one that had run nothing
    # may have died of a SIGTERM before installing its handler, or exited 1 because it
    # started while the store was unreachable
    ran = {pid for _, _, _, pid in ledger.lines()}
    codes = {p.pid: p.returncode for p in pool.exited if p.pid not in pool.fates.killed}
    assert all(code == 0 or (code in (1, -signal.SIGTERM) and pid not in ran)
               for pid, code in codes.items()), (codes, pool.log_text())
