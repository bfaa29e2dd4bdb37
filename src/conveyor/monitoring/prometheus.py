"""Prometheus exporter: a collector that reads the store on each scrape (through the store
protocol), served by ``conveyor metrics --port 9108`` or mounted as a WSGI/ASGI app:

    from conveyor.monitoring.prometheus import make_wsgi_app
    metrics_app = make_wsgi_app(app)

Counters are totals of the per-minute samples since the exporter started (and the hour
before, so a fresh exporter has something to show). Minutes older than two minutes are
final, so the collector folds them into running totals once and reads only the recent
minutes afterwards: the counters never go back when old samples are pruned.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

try:
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client import make_asgi_app as _make_asgi_app
    from prometheus_client import make_wsgi_app as _make_wsgi_app
    from prometheus_client.core import (
        CounterMetricFamily,
        GaugeMetricFamily,
        HistogramMetricFamily,
        Metric,
        SummaryMetricFamily,
    )
    from prometheus_client.registry import Collector
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    from ..errors import ConfigurationError

    raise ConfigurationError(
        "the Prometheus exporter needs prometheus-client: pip install 'conveyor[monitoring]'"
    ) from exc

from ..errors import StoreError
from ..records import RUNTIME_BUCKETS, MetricSample
from .metrics import minute_of
from .stats import Summary, summarise
from .views import OVERVIEW_WINDOW

if TYPE_CHECKING:
    from ..app import Conveyor

_SETTLED = 120.0  # rows of minutes this far back are final (workers flush every few seconds)
HISTORY = 3600.0  # seconds of stored samples a new exporter starts its counters from
_STATES = ("waiting", "scheduled", "running", "failed")


class _Totals:
    """Running totals per (queue, job) that survive pruning of old samples."""

    def __init__(self, start: float) -> None:
        self.base: dict[tuple[str, str], Summary] = {}
        self.mark = start  # minutes before this are folded into ``base``
        self.lock = threading.Lock()

    def read(self, rows_since: Callable[[float], list[MetricSample]],
             now: float) -> dict[tuple[str, str], Summary]:
        with self.lock:
            rows = rows_since(self.mark)
            settled = max(self.mark, minute_of(now - _SETTLED))
            for row in rows:
                if row.minute < settled:
                    self.base.setdefault((row.queue, row.name), Summary()).add(row)
            self.mark = settled
            totals = {key: _copy(summary) for key, summary in self.base.items()}
        for row in rows:
            if row.minute >= settled:
                totals.setdefault((row.queue, row.name), Summary()).add(row)
        return totals


def _copy(summary: Summary) -> Summary:
    copy = Summary()
    for name in ("processed", "failed", "released", "timed_out", "runtime_sum", "runtime_max",
                 "wait_sum", "wait_max"):
        setattr(copy, name, getattr(summary, name))
    copy.histogram = list(summary.histogram)
    return copy


class ConveyorCollector(Collector):
    def __init__(self, app: Conveyor, history: float = HISTORY) -> None:
        self.app = app
        # reading a whole retention window on the first scrape could outlast the scrape
        # timeout on a busy store; counters only need a start, rate() does the rest
        self.totals = _Totals(minute_of(app.clock() - history))

    def describe(self) -> list[Metric]:
        return []  # read at scrape time only: registering must not touch the store

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily("conveyor_up", "1 when the store answered this scrape.")
        try:
            families = list(self._families())
        except StoreError:
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        yield from families

    def _families(self) -> Iterator[Metric]:
        app = self.app
        backend = app.backend
        now = app.clock()
        stats = backend.queue_stats(now)
        workers = app.live_workers()
        yield from _queue_families(stats, workers, now)
        recent = summarise(backend.metrics_read(now - OVERVIEW_WINDOW, None), lambda s: s.queue)
        throughput = GaugeMetricFamily(
            "conveyor_queue_throughput_per_minute",
            "Attempts finished per minute over the last five minutes.", labels=["queue"])
        for queue in sorted(recent):
            throughput.add_metric([queue], recent[queue].processed / (OVERVIEW_WINDOW / 60))
        yield throughput
        yield from _worker_families(workers)
        totals = self.totals.read(lambda since: backend.metrics_read(since, None), now)
        yield from _job_families(totals)


def _queue_families(stats: list[Any], workers: list[Any], now: float) -> Iterator[Metric]:
    jobs = GaugeMetricFamily("conveyor_queue_jobs", "Jobs per queue and state.",
                             labels=["queue", "state"])
    oldest = GaugeMetricFamily("conveyor_queue_oldest_waiting_seconds",
                               "Age of the oldest waiting job (0 when none waits).",
                               labels=["queue"])
    paused = GaugeMetricFamily("conveyor_queue_paused", "1 when the queue is paused.",
                               labels=["queue"])
    serving = GaugeMetricFamily("conveyor_queue_workers", "Live workers serving the queue.",
                                labels=["queue"])
    for s in stats:
        for state, value in zip(_STATES, (s.available, s.scheduled, s.running, s.failed),
                                strict=True):
            jobs.add_metric([s.queue, state], float(value))
        oldest.add_metric([s.queue], s.oldest_age(now) or 0.0)
        paused.add_metric([s.queue], 1.0 if s.paused else 0.0)
        serving.add_metric([s.queue], float(sum(1 for w in workers if s.queue in w.queues)))
    yield from (jobs, oldest, paused, serving)


def _worker_families(workers: list[Any]) -> Iterator[Metric]:
    count = GaugeMetricFamily("conveyor_workers", "Live workers by state.", labels=["state"])
    memory = GaugeMetricFamily("conveyor_worker_resident_memory_bytes",
                               "Resident memory of each live worker.", labels=["worker", "host"])
    busy = GaugeMetricFamily("conveyor_worker_busy_slots", "Jobs a worker is running now.",
                             labels=["worker"])
    slots = GaugeMetricFamily("conveyor_worker_concurrency", "Jobs a worker may run at once.",
                              labels=["worker"])
    states: dict[str, int] = {"running": 0, "paused": 0, "stopping": 0}
    for w in workers:
        states[w.state] = states.get(w.state, 0) + 1
        mb = w.info.get("memory_mb")
        if isinstance(mb, int | float):
            memory.add_metric([w.name, w.host], float(mb) * 1024 * 1024)
        busy.add_metric([w.name], float(len(w.info.get("current") or [])))
        slots.add_metric([w.name], float(w.concurrency))
    for state, n in sorted(states.items()):
        count.add_metric([state], float(n))
    yield from (count, memory, busy, slots)


def _job_families(totals: dict[tuple[str, str], Summary]) -> Iterator[Metric]:
    labels = ["queue", "job"]
    counters = {
        "processed": CounterMetricFamily("conveyor_jobs_processed",
                                         "Attempts finished, whatever the outcome.",
                                         labels=labels),
        "failed": CounterMetricFamily("conveyor_jobs_failed",
                                      "Jobs moved to the failed store.", labels=labels),
        "released": CounterMetricFamily("conveyor_jobs_released",
                                        "Attempts released for a retry.", labels=labels),
        "timed_out": CounterMetricFamily("conveyor_jobs_timed_out",
                                         "Attempts that ran past their timeout.", labels=labels),
    }
    runtime = HistogramMetricFamily("conveyor_job_runtime_seconds", "Runtime of attempts.",
                                    labels=labels)
    wait = SummaryMetricFamily("conveyor_job_wait_seconds",
                               "Time from available to started.", labels=labels)
    for (queue, name), s in sorted(totals.items()):
        for field_name, family in counters.items():
            family.add_metric([queue, name], float(getattr(s, field_name)))
        cumulative, buckets = 0, []
        for bound, count in zip([*RUNTIME_BUCKETS, float("inf")], s.histogram, strict=True):
            cumulative += count
            buckets.append(("+Inf" if bound == float("inf") else repr(bound), float(cumulative)))
        runtime.add_metric([queue, name], buckets, s.runtime_sum)
        wait.add_metric([queue, name], count_value=s.processed, sum_value=s.wait_sum)
    yield from counters.values()
    yield from (runtime, wait)


def registry_for(app: Conveyor) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(ConveyorCollector(app))
    return registry


def make_wsgi_app(app: Conveyor) -> Callable[..., Any]:
    """A WSGI app serving the metrics of ``app``'s store (mount it at /metrics)."""
    return _make_wsgi_app(registry_for(app))


def make_asgi_app(app: Conveyor) -> Callable[..., Any]:
    """An ASGI app serving the metrics of ``app``'s store (mount it at /metrics)."""
    return _make_asgi_app(registry_for(app))


def serve(app: Conveyor, port: int, addr: str = "127.0.0.1") -> tuple[Any, threading.Thread]:
    """Serve /metrics on a background thread; returns (server, thread)."""
    server, thread = start_http_server(port, addr, registry=registry_for(app))
    return server, thread
