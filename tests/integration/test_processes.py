"""Real `conveyor work` processes on SQLite: kills, graceful stops, exit flags."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.worker.options import EXIT_STUCK

from .helpers import Ledger, run_conveyor, start_worker, stop, wait_until


@pytest.fixture
def ledger(tmp_path: Path) -> Ledger:
    return Ledger(tmp_path / "ledger.txt")


@pytest.fixture
def app(sqlite_url: str) -> Conveyor:
    from tests.apps import basic

    basic.app.use_store(sqlite_url)
    return basic.app


def dispatch(app: Conveyor, name: str, *args_list: tuple[object, ...]) -> list[str]:
    job = app.get_job(name)
    return app.dispatch_many([job.prepare(*args) for args in args_list])


def running_lease_end(app: Conveyor) -> float:
    """When the last lease of a running job expires (0 when none runs)."""
    conn = app.backend.conn  # type: ignore[attr-defined]
    row = conn.execute("SELECT MAX(lease_expires_at) FROM jobs WHERE reserved_at IS NOT NULL")
    return float(row.fetchone()[0] or 0.0)


def test_sigkill_mid_run_loses_nothing(app: Conveyor, sqlite_url: str, ledger: Ledger) -> None:
    dispatch(app, "slow", *[(i, 0.2) for i in range(40)])
    worker = start_worker(sqlite_url, ledger.path, "--queue", "default", "--concurrency", "4",
                          "--lease", "2")
    wait_until(lambda: len(ledger.count("start")) >= 6, what="jobs to start")
    worker.kill()
    worker.wait(10)
    started_not_done = set(ledger.count("start")) - set(ledger.count("done"))
    assert started_not_done, "the kill should catch jobs in flight"
    # the killed worker's leases expire within one lease period; then a burst worker
    # recovers them (the lost attempt counted) and drains the rest
    expiry = running_lease_end(app)
    wait_until(lambda: time.time() > expiry, timeout=10, what="leases to expire")
    result = run_conveyor(sqlite_url, ledger.path, "work", "--queue", "default",
                          "--concurrency", "4", "--stop-when-empty", "--lease", "2")
    assert result.returncode == 0, result.stderr
    done = ledger.count("done")
    assert sorted(done) == sorted(str(i) for i in range(40))  # every job completed
    assert all(count == 1 for count in done.values())  # none completed twice
    reruns = [(tag, attempt) for event, tag, attempt, _ in ledger.lines()
              if event == "done" and tag in started_not_done]
    assert reruns and all(attempt == 2 for _, attempt in reruns)  # the lost attempt counted
    assert app.backend.queue_stats(time.time()) == []


# at --concurrency 1 a sync job runs on the worker's main thread: the same promises hold
CONCURRENCY = pytest.mark.parametrize("concurrency", [1, 4])


@CONCURRENCY
def test_sigterm_lets_running_jobs_finish(app: Conveyor, sqlite_url: str, ledger: Ledger,
                                          concurrency: int) -> None:
    dispatch(app, "slow", *[(i, 0.5) for i in range(12)])
    worker = start_worker(sqlite_url, ledger.path, "--queue", "default", "--concurrency",
                          str(concurrency))
    wait_until(lambda: len(ledger.count("start")) >= concurrency, what="jobs to start")
    code, err = stop(worker, signal.SIGTERM)
    assert code == 0, err
    assert "stopping: signal SIGTERM" in err
    assert ledger.count("start") == ledger.count("done")  # nothing cut off mid-run
    result = run_conveyor(sqlite_url, ledger.path, "work", "--queue", "default",
                          "--concurrency", "4", "--stop-when-empty")
    assert result.returncode == 0, result.stderr
    done = ledger.count("done")
    assert sorted(done) == sorted(str(i) for i in range(12))
    assert all(count == 1 for count in done.values())  # nothing ran twice
    assert all(attempt == 1 for _, _, attempt, _ in ledger.lines())


def _long_job_running(app: Conveyor, sqlite_url: str, ledger: Ledger, concurrency: int,
                      grace: float) -> tuple[str, subprocess.Popen[str]]:
    (job_id,) = dispatch(app, "slow", (1, 60.0))
    worker = start_worker(sqlite_url, ledger.path, "--queue", "default", "--concurrency",
                          str(concurrency), "--grace", str(grace), "--lease", "60")
    wait_until(lambda: ledger.count("start") == {"1": 1}, what="the job to start")
    return job_id, worker


def _released_unfinished(app: Conveyor, job_id: str, ledger: Ledger) -> None:
    job = app.backend.jobs_get(job_id)
    assert job is not None and job.attempts == 1 and not job.token
    assert job.available_at <= time.time()  # released to run again now
    assert ledger.count("done") == {}  # cut off mid-run


@CONCURRENCY
def test_a_job_running_past_the_grace_period_is_released(
        app: Conveyor, sqlite_url: str, ledger: Ledger, concurrency: int) -> None:
    job_id, worker = _long_job_running(app, sqlite_url, ledger, concurrency, grace=0.5)
    code, err = stop(worker, signal.SIGTERM, timeout=20)
    assert code == 0, err
    assert "grace period over: releasing 1 running job(s)" in err
    _released_unfinished(app, job_id, ledger)


@CONCURRENCY
def test_a_second_signal_releases_running_jobs_at_once(
        app: Conveyor, sqlite_url: str, ledger: Ledger, concurrency: int) -> None:
    job_id, worker = _long_job_running(app, sqlite_url, ledger, concurrency, grace=600)
    worker.send_signal(signal.SIGTERM)
    wait_until(lambda: _worker_state(app) == "stopping", what="the worker to stop taking jobs")
    code, err = stop(worker, signal.SIGTERM, timeout=20)
    assert code == 0, err
    assert "second SIGTERM" in err
    _released_unfinished(app, job_id, ledger)


def _worker_state(app: Conveyor) -> str:
    workers = app.backend.worker_list()
    return workers[0].state if workers else ""


def test_a_sleeping_job_past_its_timeout_is_retried_promptly(
        app: Conveyor, sqlite_url: str, ledger: Ledger) -> None:
    (job_id,) = dispatch(app, "sleeper", (1, 30.0))
    started = time.time()
    # --concurrency 1: the job sleeps on the worker's main thread; the watchdog ends it
    first = run_conveyor(sqlite_url, ledger.path, "work", "--queue", "default",
                         "--stop-when-empty", "--lease", "60", "--concurrency", "1")
    # the thread sleeping in C cannot be interrupted: the worker records the timeout and
    # exits for its supervisor to restart it, well before the 60 s lease would expire
    assert first.returncode == EXIT_STUCK, first.stderr
    assert "could not be stopped" in first.stderr
    assert time.time() - started < 30
    job = app.backend.jobs_get(job_id)
    assert job is not None and job.attempts == 1 and not job.token
    assert job.available_at <= time.time()  # released for an immediate retry
    assert ledger.count("done") == {}  # the first attempt never finished
    second = run_conveyor(sqlite_url, ledger.path, "work", "--queue", "default",
                          "--stop-when-empty")
    assert second.returncode == EXIT_STUCK
    failed = app.backend.failed_get(job_id)
    assert failed is not None and failed.attempts == 2 and "JobTimeout" in failed.exception


@pytest.mark.parametrize(("flags", "expected_done", "message"), [
    (["--max-jobs", "3"], 3, "--max-jobs 3 reached"),
    (["--once"], 1, "--once: one job done"),
    (["--memory", "1"], 1, "--memory 1 MB exceeded"),
    (["--stop-when-empty"], 10, "queues empty"),
])
def test_exit_flags(app: Conveyor, sqlite_url: str, ledger: Ledger, flags: list[str],
                    expected_done: int, message: str) -> None:
    dispatch(app, "noop", *[(i,) for i in range(10)])
    result = run_conveyor(sqlite_url, ledger.path, "work", "--queue", "default", *flags)
    assert result.returncode == 0, result.stderr
    assert sum(ledger.count("done").values()) == expected_done
    assert message in result.stderr


def test_max_time_stops_an_idle_worker(sqlite_url: str, ledger: Ledger) -> None:
    result = run_conveyor(sqlite_url, ledger.path, "work", "--max-time", "0.5", "--sleep", "0.1")
    assert result.returncode == 0, result.stderr
    assert "--max-time 0.5s reached" in result.stderr


def test_restart_stamp_stops_running_workers(sqlite_url: str, ledger: Ledger) -> None:
    worker = start_worker(sqlite_url, ledger.path, "--sleep", "0.1")
    wait_until(lambda: Conveyor(sqlite_url).backend.worker_list() != [], what="registration")
    result = run_conveyor(sqlite_url, ledger.path, "restart", app=None)
    assert result.returncode == 0 and "Restart signal sent" in result.stdout
    _, err = worker.communicate(timeout=30)
    assert worker.returncode == 0 and "restart requested" in err
    assert Conveyor(sqlite_url).backend.worker_list() == []  # deregistered


def test_json_logs_one_line_per_job(app: Conveyor, sqlite_url: str, ledger: Ledger) -> None:
    import json

    dispatch(app, "noop", (1,))
    dispatch(app, "fail_fast", (2,))
    result = run_conveyor(sqlite_url, ledger.path, "work", "--stop-when-empty", "--json")
    jobs = [json.loads(line) for line in result.stderr.splitlines()
            if json.loads(line).get("event") == "job"]
    assert [(j["job"], j["outcome"], j["attempt"]) for j in jobs] == [
        ("noop", "done", 1), ("fail_fast", "failed", 1)]
    assert {"queue", "id", "duration_ms", "tries", "ts", "level"} <= set(jobs[0])
