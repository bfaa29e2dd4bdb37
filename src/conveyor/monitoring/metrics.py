"""Metrics recording in the worker: per (minute, queue, job name) totals aggregated in
memory, written through ``metrics_record`` every few seconds and on shutdown.

Each worker owns its rows (keyed by its name) and rewrites them whole, so stores upsert
without read-modify-write. A worker restarted under the same name first reads back its
row of the current minute, so a restart adds to it instead of overwriting it. Old
minutes are pruned by every worker now and then (an idempotent delete).
"""

from __future__ import annotations

import bisect
import logging
import random
import threading
from collections.abc import Callable

from ..backends import Backend
from ..errors import ConveyorError
from ..records import RUNTIME_BUCKETS, MetricSample

log = logging.getLogger("conveyor.metrics")

#: how often (seconds) a worker prunes samples older than the retention window
PRUNE_EVERY = 300.0


def minute_of(stamp: float) -> int:
    return int(stamp // 60) * 60


def bucket_index(runtime: float) -> int:
    """The histogram slot of a runtime: the first bucket whose upper bound is >= it."""
    return bisect.bisect_left(RUNTIME_BUCKETS, runtime)


def add_attempt(sample: MetricSample, *, outcome: str, runtime: float, wait: float,
                timed_out: bool) -> None:
    """Count one finished attempt into ``sample``; outcome: done, released or failed."""
    sample.processed += 1
    if outcome == "failed":
        sample.failed += 1
    elif outcome == "released":
        sample.released += 1
    if timed_out:
        sample.timed_out += 1
    runtime = max(0.0, runtime)
    wait = max(0.0, wait)
    sample.runtime_sum += runtime
    sample.runtime_max = max(sample.runtime_max, runtime)
    sample.wait_sum += wait
    sample.wait_max = max(sample.wait_max, wait)
    sample.histogram[bucket_index(runtime)] += 1


class MetricsRecorder:
    """The worker's aggregator and its flusher thread (``start``/``record``/``stop``)."""

    def __init__(self, backend: Backend, worker: str, clock: Callable[[], float], *,
                 flush_interval: float = 5.0, retention: float = 24 * 3600.0) -> None:
        self.backend = backend
        self.worker = worker
        self.clock = clock
        self.flush_interval = flush_interval
        self.retention = retention
        self._samples: dict[tuple[int, str, str], MetricSample] = {}
        self._dirty: set[tuple[int, str, str]] = set()
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_prune: float | None = None

    # -- the hot path ------------------------------------------------------------------
    def record(self, *, queue: str, name: str, outcome: str, runtime: float, wait: float,
               timed_out: bool = False, now: float | None = None) -> None:
        key = (minute_of(self.clock() if now is None else now), queue, name)
        with self._lock:
            sample = self._samples.get(key)
            if sample is None:
                sample = self._samples[key] = MetricSample(key[0], queue, name, self.worker)
            add_attempt(sample, outcome=outcome, runtime=runtime, wait=wait,
                        timed_out=timed_out)
            self._dirty.add(key)

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        self._resume_current_minute()
        self._thread = threading.Thread(target=self._loop, name="conveyor-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the flusher and write what is left (called on every worker exit path)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=self.flush_interval + 5.0)
        self.flush()

    def _loop(self) -> None:
        # a random first delay spreads the flushes of workers started together
        wait = self.flush_interval * random.uniform(0.5, 1.0)
        self._maybe_prune()
        while not self._stop.wait(wait):
            wait = self.flush_interval
            self.flush()
            self._maybe_prune()

    def _resume_current_minute(self) -> None:
        minute = minute_of(self.clock())
        try:
            rows = self.backend.metrics_read(minute, minute + 60)
        except ConveyorError as exc:
            log.warning("could not read this worker's metrics back: %s", exc)
            return
        with self._lock:
            for row in rows:
                if row.worker == self.worker:
                    self._samples[(row.minute, row.queue, row.name)] = row

    # -- writing ----------------------------------------------------------------------------
    def flush(self) -> bool:
        """Write changed rows; keep them dirty when the store fails. True when written."""
        with self._flush_lock:
            with self._lock:
                keys = sorted(self._dirty)
                rows = [MetricSample(s.minute, s.queue, s.name, s.worker, s.processed,
                                     s.failed, s.released, s.timed_out, s.runtime_sum,
                                     s.runtime_max, s.wait_sum, s.wait_max, list(s.histogram))
                        for s in (self._samples[k] for k in keys)]
                self._dirty.difference_update(keys)
            if not rows:
                return True
            try:
                self.backend.metrics_record(rows)
            except ConveyorError as exc:
                with self._lock:
                    self._dirty.update(keys)
                log.warning("could not write metrics (kept for the next flush): %s", exc)
                return False
            # rows of finished minutes are final once written: forget them
            current = minute_of(self.clock())
            with self._lock:
                for key in keys:
                    if key[0] < current and key not in self._dirty:
                        self._samples.pop(key, None)
            return True

    def _maybe_prune(self) -> None:
        now = self.clock()
        if self._last_prune is not None and now - self._last_prune < PRUNE_EVERY:
            return
        self._last_prune = now
        self.prune(now)

    def prune(self, now: float) -> int:
        try:
            return self.backend.metrics_prune(now - self.retention)
        except ConveyorError as exc:
            log.warning("could not prune old metrics: %s", exc)
            return 0
