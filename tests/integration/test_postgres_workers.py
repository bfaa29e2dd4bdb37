"""`conveyor work` processes against PostgreSQL: many workers, exactly-once runs, a worker
killed mid-run, and NOTIFY-driven pickup by an idle worker."""

from __future__ import annotations

import json
import os
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends.store_postgres import PG_BASE, PG_HOST, PG_PORT
from tests.conftest import require_server

from .pg_support import PgSetup, pg_setup, wait_until

LONG = os.environ.get("CONVEYOR_LONG", "") not in ("", "0")
PER_WORKER = 10_000 if LONG else 2_500


@pytest.fixture
def pg(tmp_path: Path) -> Iterator[PgSetup]:
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    with pg_setup(tmp_path, PG_BASE) as setup:
        setup.prepare()
        yield setup


@pytest.fixture
def jobs(pg: PgSetup) -> Iterator[object]:
    from tests.apps import pg_jobs

    pg_jobs.app.use_store(pg.url)
    yield pg_jobs
    pg_jobs.app.close()


def _dispatch(jobs: object, fn: str, ns: range, **kwargs: float) -> None:
    app = jobs.app  # type: ignore[attr-defined]
    job = getattr(jobs, fn)
    for start in range(ns.start, ns.stop, 5000):
        chunk = range(start, min(start + 5000, ns.stop))
        app.dispatch_many([job.prepare(n, **kwargs) for n in chunk])


@pytest.mark.slow
@pytest.mark.timeout(300 if LONG else 120)
def test_four_workers_run_every_job_exactly_once(pg: PgSetup, jobs: object) -> None:
    total = 4 * PER_WORKER
    _dispatch(jobs, "record", range(total))
    workers = [pg.worker("--queue", "default", "--concurrency", "4", "--stop-when-empty",
                         "--sleep", "0.5") for _ in range(4)]
    for proc in workers:
        assert proc.wait(240 if LONG else 100) == 0, pg.logs()
    # `record` fails on a second run of the same n (primary key): none may have failed
    backend = jobs.app.backend  # type: ignore[attr-defined]
    assert backend.failed_list() == [], pg.logs()
    assert pg.query("SELECT count(*), count(DISTINCT n), max(runs) FROM {s}.runs") == [
        (total, total, 1)]
    assert pg.query("SELECT count(*) FROM {s}.jobs") == [(0,)]
    share = dict(pg.query("SELECT pid, count(*) FROM {s}.runs GROUP BY pid"))
    assert len(share) == 4, share  # every process took part
    print(f"jobs per worker process: {sorted(share.values())}")


@pytest.mark.slow
def test_killed_worker_jobs_rerun_after_the_lease(pg: PgSetup, jobs: object) -> None:
    _dispatch(jobs, "count", range(60), delay=0.3)
    first = pg.worker("--queue", "default", "--concurrency", "4", "--lease", "2",
                      "--sleep", "0.5", name="doomed")
    wait_until(lambda: len(pg.runs()) >= 8, 60, "the first worker to run some jobs")
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    held = pg.query("SELECT id, payload, lease_expires_at FROM {s}.jobs "
                    "WHERE reserved_at IS NOT NULL")
    assert held, "the killed worker held no job; nothing to recover"
    # the leases run out (2 s after the last renewal); then a burst worker recovers them
    latest = max(row[2] for row in held)
    wait_until(lambda: time.time() > latest + 0.1, 10, "the dead worker's leases to expire")
    second = pg.worker("--queue", "default", "--concurrency", "4", "--lease", "2",
                       "--stop-when-empty", "--sleep", "0.5", name="rescuer")
    assert second.wait(90) == 0, pg.logs()
    runs = pg.runs()
    assert sorted(runs) == list(range(60)), pg.logs()  # nothing lost
    held_ns = {json.loads(row[1])["args"][0] for row in held}
    rescuer_pid = second.pid
    by_pid = dict(pg.query("SELECT n, pid FROM {s}.runs"))
    # each job the dead worker held ran to the end in the rescuer (or had already
    # recorded itself just before the kill, in which case it ran again: runs == 2)
    for n in held_ns:
        assert by_pid[n] == rescuer_pid or runs[n] == 2, (n, by_pid[n], runs[n])
    assert jobs.app.backend.failed_list() == []  # type: ignore[attr-defined]
    assert pg.query("SELECT count(*) FROM {s}.jobs") == [(0,)]


@pytest.mark.slow
def test_idle_worker_picks_up_a_dispatch_within_a_second(pg: PgSetup, jobs: object) -> None:
    worker = pg.worker("--queue", "default", "--concurrency", "2", "--sleep", "30",
                       name="idle")
    backend = jobs.app.backend  # type: ignore[attr-defined]
    wait_until(lambda: backend.worker_list(), 30, "the worker to register")
    latencies: list[float] = []
    idle = threading.Event()
    for n in range(3):
        # Two idle seconds put the worker's poll backstop at a 1.6 s interval, next poll
        # about 1.15 s away: a pickup within a second can only come from NOTIFY.
        idle.wait(2.0)
        sent = time.time()
        jobs.count.dispatch(n)  # type: ignore[attr-defined]
        wait_until(lambda n=n: n in pg.runs(), 10, f"job {n} to run")
        (started,) = pg.query("SELECT started FROM {s}.runs WHERE n = %s", (n,))[0]
        latencies.append(started - sent)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(30) == 0, pg.logs()
    print(f"pickup latencies (s): {[round(x, 4) for x in latencies]}")
    assert max(latencies) < 1.0, latencies
    assert statistics.median(latencies) < 0.25, latencies
