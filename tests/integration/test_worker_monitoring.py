"""What a worker reports: metrics samples, its status record, events and log lines."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections import defaultdict
from typing import Any

from conveyor import Conveyor, current_job
from conveyor.monitoring import views
from conveyor.monitoring.metrics import minute_of
from conveyor.records import MetricSample
from conveyor.retry import parse_backoff
from conveyor.worker.options import WorkerOptions
from conveyor.worker.policy import WorkerDefaults
from conveyor.worker.runner import Worker

from .conftest import AppFactory
from .monitoring_store import MINUTE, NOW, Clock


def worker(app: Conveyor, name: str = "w1", queues: list[str] | None = None,
           stop_when_empty: bool = True) -> Worker:
    return Worker(app, WorkerOptions(queues=queues or ["default"], name=name, sleep=0.05,
                                     stop_when_empty=stop_when_empty,
                                     defaults=WorkerDefaults(backoff=parse_backoff(0))))


def rows_by_job(app: Conveyor) -> dict[str, MetricSample]:
    return {s.name: s for s in app.backend.metrics_read(0)}


def test_events_and_metrics_of_every_outcome(app: Conveyor, clock: Clock) -> None:
    seen: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for event in ("job_dispatched", "job_started", "job_succeeded", "job_failed",
                  "job_released", "job_timed_out", "worker_started", "worker_stopped"):
        app.on(event, lambda event, **data: seen[event].append(data))

    @app.job(name="ok")
    def ok() -> None:
        pass

    @app.job(name="boom", tries=1)
    def boom() -> None:
        raise ValueError("card declined")

    @app.job(name="flaky", tries=2)
    def flaky() -> None:
        if current_job().attempt == 1:
            raise ValueError("first try")

    @app.job(name="sleepy", tries=1, timeout=0.2)
    async def sleepy() -> None:
        await asyncio.sleep(30)

    ids = [ok.dispatch(), boom.dispatch(), flaky.dispatch(), sleepy.dispatch()]
    clock.now = NOW + 7  # every job waited seven seconds
    w = worker(app)
    assert w.run() == 0

    assert [d["job_id"] for d in seen["job_dispatched"]] == ids
    assert len(seen["job_started"]) == 5 and seen["job_started"][0]["wait"] == 7.0
    assert sorted(d["name"] for d in seen["job_succeeded"]) == ["flaky", "ok"]
    assert [d["name"] for d in seen["job_released"]] == ["flaky"]
    failed = {d["name"]: d for d in seen["job_failed"]}
    assert sorted(failed) == ["boom", "sleepy"]
    assert isinstance(failed["boom"]["error"], ValueError)
    assert "ValueError: card declined" in failed["boom"]["traceback"]
    (timed_out,) = seen["job_timed_out"]
    assert (timed_out["name"], timed_out["timeout"], timed_out["outcome"]) == (
        "sleepy", 0.2, "failed")
    assert all(d["worker"] == "w1" for d in seen["job_failed"] + seen["job_started"])
    assert seen["worker_started"] == [{"worker": "w1", "host": socket.gethostname(),
                                       "pid": seen["worker_started"][0]["pid"],
                                       "queues": ["default"], "concurrency": 1}]
    assert seen["worker_stopped"] == [{"worker": "w1", "reason": "queues empty",
                                       "processed": 5, "failed": 2}]

    rows = rows_by_job(app)
    assert {n: (r.minute, r.worker, r.processed, r.failed, r.released, r.timed_out)
            for n, r in rows.items()} == {
        "ok": (MINUTE, "w1", 1, 0, 0, 0), "boom": (MINUTE, "w1", 1, 1, 0, 0),
        "flaky": (MINUTE, "w1", 2, 0, 1, 0), "sleepy": (MINUTE, "w1", 1, 1, 0, 1)}
    assert rows["ok"].wait_sum == 7.0 and rows["flaky"].wait_sum == 7.0  # the retry: 0
    assert rows["sleepy"].runtime_max >= 0.2 and sum(rows["sleepy"].histogram) == 1
    assert rows["sleepy"].histogram.index(1) >= 7  # in a bucket above 0.1 s


def test_worker_status_record(app: Conveyor) -> None:
    holder: dict[str, Any] = {}

    @app.job(name="probe")
    def probe() -> None:
        holder["worker"].heartbeat()
        holder["rows"] = views.workers(app)

    job_id = probe.dispatch()
    w = holder["worker"] = worker(app)
    w.run()
    (row,) = holder["rows"]
    assert row["name"] == "w1" and row["state"] == "running" and row["pid"] > 0
    assert row["host"] == socket.gethostname() and row["started_at"] == NOW
    assert row["queues"] == ["default"] and row["concurrency"] == 1
    assert [(j["id"], j["name"], j["started"]) for j in row["current"]] == [
        (job_id, "probe", NOW)]
    assert row["memory_mb"] > 0 and row["last_heartbeat"] == NOW
    assert app.backend.worker_list() == []  # deregistered on exit


def test_stopping_state_shows_at_once(app: Conveyor) -> None:
    holder: dict[str, Any] = {}

    @app.job(name="deploy")
    def deploy() -> None:
        holder["worker"].request_stop("restart requested")
        deadline = time.monotonic() + 20
        while [w.state for w in app.backend.worker_list()] != ["stopping"]:
            assert time.monotonic() < deadline, "the record never said stopping"
            time.sleep(0.02)  # polling a condition with a deadline
        holder["seen"] = True

    deploy.dispatch()
    holder["worker"] = worker(app, stop_when_empty=False)
    assert holder["worker"].run() == 0
    assert holder["seen"] and app.backend.worker_list() == []


def test_paused_state_and_dead_workers_disappear(app: Conveyor, clock: Clock) -> None:
    w = worker(app, queues=["emails", "emails_low"])
    app.backend.queue_pause("emails")
    w.heartbeat()
    assert [x.state for x in app.live_workers()] == ["running"]  # one queue still served
    app.backend.queue_pause("emails_low")
    w.heartbeat()
    assert [x.state for x in app.live_workers()] == ["paused"]
    clock.now += 2 * 30.0 + 1  # two leases without a heartbeat
    assert app.live_workers() == [] and app.backend.worker_list() == []


def test_metrics_survive_a_restart_under_the_same_name(app: Conveyor) -> None:
    @app.job(name="ok")
    def ok() -> None:
        pass

    for run, jobs in enumerate((2, 3), 1):
        app.dispatch_many([ok.prepare() for _ in range(jobs)])
        worker(app, name="w1").run()
        assert rows_by_job(app)["ok"].processed == (2 if run == 1 else 5)


def test_old_samples_are_pruned(make_app: AppFactory) -> None:
    app = make_app(metrics_retention=3600)
    app.backend.metrics_record([
        MetricSample(minute_of(NOW - 7200), "default", "old", "w0", processed=1),
        MetricSample(minute_of(NOW - 1800), "default", "recent", "w0", processed=1)])
    worker(app).run()
    assert sorted(rows_by_job(app)) == ["recent"]


def test_flushed_while_running(make_app: AppFactory) -> None:
    app = make_app(metrics_flush_interval=0.1)

    @app.job(name="ok")
    def ok() -> None:
        pass

    ok.dispatch()
    w = worker(app, stop_when_empty=False)
    thread = threading.Thread(target=w.run)
    thread.start()
    try:
        deadline = time.monotonic() + 20
        while "ok" not in rows_by_job(app):
            assert time.monotonic() < deadline, "metrics were not flushed while running"
            time.sleep(0.05)  # polling a condition with a deadline
        assert thread.is_alive()
    finally:
        w.request_stop("test over")
        thread.join(20)
    assert not thread.is_alive()
