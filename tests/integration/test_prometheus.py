"""The Prometheus exporter scraped over HTTP and parsed with prometheus_client's parser."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from conveyor import Conveyor
from conveyor.monitoring.prometheus import make_asgi_app, make_wsgi_app, serve
from conveyor.records import MetricSample

from .monitoring_store import MINUTE, NOW, Clock, histogram, populate


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain")
        text = response.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


@pytest.fixture
def exporter(app: Conveyor) -> Iterator[tuple[Conveyor, str]]:
    populate(app)
    server, thread = serve(app, 0, "127.0.0.1")
    yield app, f"http://127.0.0.1:{server.server_port}/metrics"
    server.shutdown()
    thread.join(5)


def test_scrape_queues_workers_and_jobs(exporter: tuple[Conveyor, str]) -> None:
    _app, url = exporter
    m = scrape(url)
    assert value(m, "conveyor_up") == 1.0
    assert value(m, "conveyor_queue_jobs", queue="emails", state="waiting") == 3
    assert value(m, "conveyor_queue_jobs", queue="emails", state="scheduled") == 1
    assert value(m, "conveyor_queue_jobs", queue="emails", state="running") == 1
    assert value(m, "conveyor_queue_jobs", queue="emails", state="failed") == 2
    assert value(m, "conveyor_queue_oldest_waiting_seconds", queue="emails") == 100.0
    assert value(m, "conveyor_queue_paused", queue="reports") == 1.0
    assert value(m, "conveyor_queue_workers", queue="emails") == 1.0
    assert value(m, "conveyor_queue_throughput_per_minute", queue="emails") == 2.0
    assert value(m, "conveyor_workers", state="running") == 1.0
    assert value(m, "conveyor_worker_resident_memory_bytes", worker="w1",
                 host="web-1") == pytest.approx(123.4 * 1024 * 1024)
    assert value(m, "conveyor_worker_busy_slots", worker="w1") == 1.0
    job = {"queue": "emails", "job": "shop.send"}
    # counters start from the last hour: the samples of two hours ago are left out
    assert value(m, "conveyor_jobs_processed_total", **job) == 10
    assert value(m, "conveyor_jobs_failed_total", **job) == 2
    assert value(m, "conveyor_jobs_released_total", **job) == 3
    assert value(m, "conveyor_jobs_timed_out_total", **job) == 1
    assert value(m, "conveyor_job_runtime_seconds_bucket", le="0.01", **job) == 0
    assert value(m, "conveyor_job_runtime_seconds_bucket", le="0.1", **job) == 8
    assert value(m, "conveyor_job_runtime_seconds_bucket", le="0.5", **job) == 10
    assert value(m, "conveyor_job_runtime_seconds_bucket", le="+Inf", **job) == 10
    assert value(m, "conveyor_job_runtime_seconds_count", **job) == 10
    assert value(m, "conveyor_job_runtime_seconds_sum", **job) == pytest.approx(1.39)
    assert value(m, "conveyor_job_wait_seconds_count", **job) == 10
    assert value(m, "conveyor_job_wait_seconds_sum", **job) == pytest.approx(4.0)
    assert value(m, "conveyor_jobs_processed_total", queue="default", job="shop.report") == 4

def test_counters_never_go_back_when_samples_are_pruned(exporter: tuple[Conveyor, str],
                                                         clock: Clock) -> None:
    app, url = exporter
    job = {"queue": "emails", "job": "shop.send"}
    assert value(scrape(url), "conveyor_jobs_processed_total", **job) == 10
    clock.now = NOW + 600  # every stored minute is now settled and folded in
    assert value(scrape(url), "conveyor_jobs_processed_total", **job) == 10
    app.backend.metrics_prune(NOW + 600)
    app.backend.metrics_record([MetricSample(MINUTE + 600, "emails", "shop.send", "w9",
                                             processed=2, histogram=histogram(b0=2))])
    assert value(scrape(url), "conveyor_jobs_processed_total", **job) == 12


def test_store_down_is_conveyor_up_zero(tmp_path: Path) -> None:
    with Conveyor(f"sqlite:///{tmp_path / 'missing' / 'x.db'}") as app:
        body: list[bytes] = []
        wsgi = make_wsgi_app(app)
        chunks = wsgi({"REQUEST_METHOD": "GET", "PATH_INFO": "/metrics", "QUERY_STRING": ""},
                      lambda status, headers: body.append(status.encode()))
        text = b"".join(chunks).decode()
    assert body == [b"200 OK"]
    assert "conveyor_up 0.0" in text


def test_conveyor_metrics_command(sqlite_url: str, tmp_path: Path) -> None:
    from .test_health import free_port

    with Conveyor(sqlite_url) as app:
        populate(app)
    port = free_port()
    env = {**os.environ, "CONVEYOR_URL": sqlite_url}
    proc = subprocess.Popen([sys.executable, "-m", "conveyor", "metrics", "--port", str(port),
                             "--host", "127.0.0.1"], env=env, cwd=tmp_path,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                m = scrape(f"http://127.0.0.1:{port}/metrics")
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                assert time.monotonic() < deadline, "the exporter did not start"
                time.sleep(0.05)  # polling a condition with a deadline
        # real time is before the fixed clock of populate(): its jobs are still scheduled
        assert value(m, "conveyor_queue_jobs", queue="images", state="scheduled") == 1
    finally:
        proc.terminate()
        assert proc.wait(timeout=10) == 0


def test_asgi_app(app: Conveyor) -> None:
    import asyncio

    populate(app)
    asgi = make_asgi_app(app)
    sent: list[dict[str, object]] = []

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "query_string": b"",
             "headers": []}
    asyncio.run(asgi(scope, receive, send))
    assert sent[0]["status"] == 200
    text = b"".join(m.get("body", b"") for m in sent[1:]).decode()  # type: ignore[misc]
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for f in text_string_to_metric_families(text) for s in f.samples}
    assert value(samples, "conveyor_queue_jobs", queue="emails", state="waiting") == 3
