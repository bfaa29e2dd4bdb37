"""Real ``conveyor work`` processes on the shared MariaDB: many workers, each job run once;
a SIGKILLed worker loses nothing. Each test has a table prefix of its own."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.backends import open_backend
from tests.backends.store_mysql import mysql_tables

from .mysql_support import dispatch, finish, ledger, wait_until, worker

LONG = os.environ.get("CONVEYOR_LONG", "") == "1"
PER_WORKER = 10_000 if LONG else 2_500  # CI: 4 x 2,500; CONVEYOR_LONG=1: 4 x 10,000


@pytest.fixture
def store() -> Iterator[tuple[str, str]]:
    with mysql_tables() as (url, prefix):
        backend = open_backend(url, table_prefix=prefix)
        backend.migrate()
        backend.close()
        yield url, prefix


def _no_store_errors(log: Path) -> None:
    text = log.read_text(errors="replace")
    for needle in ("Deadlock", "1213", "Lock wait timeout", "Traceback"):
        assert needle not in text, f"{needle!r} reached the worker log:\n{text[-3000:]}"


@pytest.mark.slow
@pytest.mark.timeout(600 if LONG else 240)
def test_four_workers_run_every_job_exactly_once(store: tuple[str, str], tmp_path: Path) -> None:
    url, prefix = store
    total = 4 * PER_WORKER
    dispatch(url, prefix, total)
    log = tmp_path / "workers.log"
    procs = [worker(url, prefix, "--concurrency", "4", "--stop-when-empty", "--quiet",
                    log=log) for _ in range(4)]
    assert finish(procs, 560 if LONG else 200) == [0, 0, 0, 0], log.read_text()[-3000:]
    runs = ledger(url, prefix)
    assert len(runs) == total and set(runs) == set(range(total))
    assert [n for n, count in runs.items() if count != 1] == []
    backend = open_backend(url, table_prefix=prefix)
    try:
        assert backend.failed_list() == []
        assert [s for s in backend.queue_stats(time.time()) if s.available or s.running] == []
    finally:
        backend.close()
    _no_store_errors(log)


@pytest.mark.timeout(120)
def test_sigkill_of_a_worker_loses_nothing(store: tuple[str, str], tmp_path: Path) -> None:
    url, prefix = store
    total, concurrency = 120, 4
    dispatch(url, prefix, total, pause=0.05)
    log = tmp_path / "workers.log"
    victim = worker(url, prefix, "--concurrency", str(concurrency), "--lease", "2", log=log)
    wait_until(lambda: len(ledger(url, prefix)) >= 20, 60, "the victim to run 20 jobs")
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    backend = open_backend(url, table_prefix=prefix)
    try:
        # the dead worker's leases run out within 2 s; then its jobs wait again
        def orphans_back() -> bool:
            backend.jobs_recover_expired(time.time(), default_tries=5)
            return all(s.running == 0 for s in backend.queue_stats(time.time()))

        wait_until(orphans_back, 30, "the killed worker's leases to expire")
        rescuer = worker(url, prefix, "--concurrency", "4", "--lease", "2", "--stop-when-empty",
                         log=log)
        assert finish([rescuer], 90) == [0], log.read_text()[-3000:]
        runs = ledger(url, prefix)
        assert set(runs) == set(range(total)), "a job was lost"
        again = [n for n, count in runs.items() if count > 1]
        # only jobs in flight at the kill may have run twice
        assert len(again) <= concurrency, again
        assert backend.failed_list() == []
        assert all(s.available == 0 and s.running == 0 for s in backend.queue_stats(time.time()))
    finally:
        backend.close()
