"""The measurements of ``conveyor bench``.

Every drain and latency figure comes from real ``conveyor work`` subprocesses and from the
record file the jobs append to (see ``recorder``): drain rate is jobs / (last job run -
first job run), pickup latency is each job's run time minus the dispatch time it carries.
"""

from __future__ import annotations

import contextlib
import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..app import Conveyor
from ..errors import ConveyorError, StoreError
from .jobs import NOOP, register
from .procs import RssSampler, WorkerProcess, start_worker, stop_workers
from .recorder import Records, wait_for_records

_CHUNK = 1000  # jobs per dispatch_many call when filling a queue


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile of already sorted values."""
    if not sorted_values:
        return 0.0
    rank = max(1, min(len(sorted_values), math.ceil(fraction * len(sorted_values))))
    return sorted_values[rank - 1]


@dataclass
class BenchConfig:
    url: str
    jobs: int = 2000
    latency_jobs: int = 400
    latency_rate: float = 200.0
    prefix: str = "conveyor_bench_"
    queue: str = "conveyor_bench"
    sleep_ms: float = 0.0
    payload_bytes: int = 0
    drains: Sequence[tuple[int, int]] = ((1, 1), (1, 8), (2, 8))  # (processes, concurrency)
    timeout: float = 300.0  # seconds any one drain may take before it is called failed


@dataclass
class DrainFigure:
    processes: int
    concurrency: int
    jobs: int
    rate: float
    peak_rss_mb: float


@dataclass
class BenchResult:
    store: str
    jobs: int
    dispatch_rate: float = 0.0
    dispatch_many_rate: float = 0.0
    drains: list[DrainFigure] = field(default_factory=list)
    latency_ms: dict[str, float] = field(default_factory=dict)
    latency_rss_mb: float = 0.0
    errors: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Bench:
    def __init__(self, config: BenchConfig, progress: Callable[[str], None] | None = None) -> None:
        self.config = config
        self.progress = progress or (lambda _msg: None)
        self.app = Conveyor(config.url, table_prefix=config.prefix)
        register(self.app)
        self.job = self.app.registry[NOOP].options(queue=config.queue)
        self.pad = "x" * config.payload_bytes
        self.tmp = Path(tempfile.mkdtemp(prefix="conveyor-bench-"))
        self.record = self.tmp / "records.bin"

    # -- helpers ----------------------------------------------------------------------
    def _kwargs(self, dispatched_at: float = 0.0) -> dict[str, Any]:
        kwargs: dict[str, Any] = {"dispatched_at": dispatched_at}
        if self.pad:
            kwargs["pad"] = self.pad
        if self.config.sleep_ms:
            kwargs["sleep_ms"] = self.config.sleep_ms
        return kwargs

    def _fresh_record(self) -> None:
        # truncate, never unlink: a running worker keeps its O_APPEND descriptor open
        self.record.write_bytes(b"")

    def clean(self) -> None:
        backend = self.app.backend
        backend.queue_clear([self.config.queue])

    def fill(self, count: int) -> float:
        """Dispatch ``count`` jobs with dispatch_many in chunks; returns the seconds taken."""
        started = time.perf_counter()
        for start in range(0, count, _CHUNK):
            n = min(_CHUNK, count - start)
            self.app.dispatch_many([self.job.prepare(**self._kwargs()) for _ in range(n)])
        return time.perf_counter() - started

    def _workers(self, processes: int, concurrency: int, *, burst: bool) -> list[WorkerProcess]:
        return [start_worker(self.config.url, self.config.prefix, self.config.queue,
                             concurrency, self.record, burst=burst)
                for _ in range(processes)]

    # -- measurements -------------------------------------------------------------------
    def dispatch_rate(self, count: int) -> float:
        started = time.perf_counter()
        for _ in range(count):
            self.job.dispatch(**self._kwargs())
        return count / (time.perf_counter() - started)

    def dispatch_many_rate(self, count: int) -> float:
        """One dispatch_many call for all the jobs (prepare included)."""
        started = time.perf_counter()
        self.app.dispatch_many([self.job.prepare(**self._kwargs()) for _ in range(count)])
        return count / (time.perf_counter() - started)

    def drain(self, processes: int, concurrency: int, count: int) -> DrainFigure:
        """Drain a pre-filled queue of ``count`` jobs with burst-mode workers."""
        self._fresh_record()
        workers = self._workers(processes, concurrency, burst=True)
        deadline = time.monotonic() + self.config.timeout
        with RssSampler([w.pid for w in workers]) as rss:
            complete = wait_for_records(self.record, count, deadline,
                                        alive=lambda: any(w.alive() for w in workers))
            for worker in workers:  # burst mode: they exit once the store is empty
                remaining = max(1.0, deadline - time.monotonic())
                try:
                    worker.proc.wait(timeout=remaining)
                except Exception:
                    break
        errors = stop_workers(workers)
        records = Records.read(self.record)
        if errors or not complete:
            raise StoreError(
                f"drain with {processes} process(es) x {concurrency} ran {len(records)} of "
                f"{count} jobs" + (": " + "; ".join(errors) if errors else ""))
        return DrainFigure(processes, concurrency, count, records.drain_rate(), rss.max_mb)

    def latency(self, count: int, rate: float) -> tuple[dict[str, float], float]:
        """Dispatch one job at a time at a steady ``rate`` to an idle worker."""
        self._fresh_record()
        workers = self._workers(1, 1, burst=False)
        try:
            with RssSampler([w.pid for w in workers]) as rss:
                # warm up: the worker is idle and waiting once it has run one job
                self.job.dispatch(**self._kwargs(time.time()))
                if not wait_for_records(self.record, 1, time.monotonic() + 60,
                                        alive=workers[0].alive):
                    raise StoreError("the latency worker did not start within 60 s")
                self._fresh_record()
                interval = 1.0 / rate
                start = time.perf_counter()
                for i in range(count):
                    pause = start + i * interval - time.perf_counter()
                    if pause > 0:
                        time.sleep(pause)
                    self.job.dispatch(**self._kwargs(time.time()))
                complete = wait_for_records(self.record, count, time.monotonic() + 60,
                                            alive=workers[0].alive)
        finally:
            errors = stop_workers(workers)
        if errors or not complete:
            raise StoreError("latency run failed: " + "; ".join(errors or ["jobs missing"]))
        lat = Records.read(self.record).latencies()
        figures = {name: percentile(lat, q) * 1000
                   for name, q in (("p50", 0.50), ("p95", 0.95), ("p99", 0.99))}
        figures["max"] = lat[-1] * 1000
        return figures, rss.max_mb

    def close(self) -> None:
        with contextlib.suppress(ConveyorError):
            self.clean()
        self.app.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def run_bench(config: BenchConfig,
              progress: Callable[[str], None] | None = None) -> BenchResult:
    """Run every measurement once; a failing part is reported in ``errors``, not raised."""
    bench = Bench(config, progress)
    say = bench.progress
    result = BenchResult(store=bench.app.display_url, jobs=config.jobs)
    try:
        bench.app.backend.migrate()
        bench.clean()
        say(f"dispatch: {config.jobs} jobs one by one")
        result.dispatch_rate = bench.dispatch_rate(config.jobs)
        bench.clean()
        say(f"dispatch_many: {config.jobs} jobs in one call")
        result.dispatch_many_rate = bench.dispatch_many_rate(config.jobs)
        bench.clean()
        for processes, concurrency in config.drains:
            say(f"drain: {config.jobs} no-op jobs, {processes} process(es) x {concurrency}")
            bench.fill(config.jobs)
            try:
                result.drains.append(bench.drain(processes, concurrency, config.jobs))
            except ConveyorError as exc:
                result.errors.append(str(exc))
            bench.clean()
        say(f"pickup latency: {config.latency_jobs} jobs at {config.latency_rate:g}/s")
        try:
            result.latency_ms, result.latency_rss_mb = bench.latency(
                config.latency_jobs, config.latency_rate)
        except ConveyorError as exc:
            result.errors.append(str(exc))
    finally:
        bench.close()
    return result

