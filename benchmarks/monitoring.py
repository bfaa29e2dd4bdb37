"""Monitoring costs: the worker's per-attempt metrics recording, and reading a day of
per-minute samples (monitor --stats, Prometheus scrapes) on a store.

    python benchmarks/monitoring.py [STORE_URL]     # default: a temporary SQLite file

The day is 24 h x 6 queues x 3 job names x 4 workers = 103,680 samples.
"""

from __future__ import annotations

import sys
import tempfile
import time
import timeit

from conveyor import Conveyor
from conveyor.monitoring import views
from conveyor.monitoring.metrics import MetricsRecorder
from conveyor.monitoring.prometheus import ConveyorCollector
from conveyor.records import RUNTIME_BUCKETS, MetricSample


def timed(label: str, fn: object) -> None:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    print(f"{label:<44} {time.perf_counter() - start:8.3f} s")


def main() -> None:
    url = sys.argv[1] if len(sys.argv) > 1 else f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    app = Conveyor(url)
    app.backend.migrate()
    recorder = MetricsRecorder(app.backend, "bench", time.time)
    best = min(timeit.repeat(
        lambda: recorder.record(queue="emails", name="shop.send", outcome="done",
                                runtime=0.003, wait=0.01), number=100_000, repeat=5))
    print(f"{'record() per finished attempt':<44} {best / 100_000 * 1e6:8.2f} us")

    now = time.time()
    first = int((now - 86400) // 60 * 60)
    hist = [1] * (len(RUNTIME_BUCKETS) + 1)
    day = [MetricSample(first + 60 * m, f"q{q}", f"job{j}", f"w{w}", processed=10,
                        runtime_sum=0.1, histogram=list(hist))
           for m in range(24 * 60) for q in range(6) for j in range(3) for w in range(4)]
    timed(f"metrics_record of {len(day)} samples", lambda: app.backend.metrics_record(day))
    collector = ConveyorCollector(app)
    timed("first Prometheus scrape (last hour)", lambda: list(collector.collect()))
    timed("next Prometheus scrape", lambda: list(collector.collect()))
    timed("monitor overview (5 min)", lambda: views.overview(app))
    timed("monitor --stats --since 1h", lambda: views.statistics(app, 3600))
    timed("monitor --stats --since 24h", lambda: views.statistics(app, 86400))
    app.backend.metrics_prune(now + 60)
    app.close()


if __name__ == "__main__":
    main()
