"""Health rules: each crossed threshold is one ``Problem`` with a stable key (rule and
subject), so alerts can be rate-limited per rule. Read through the store protocol only."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import ConveyorError, StoreError
from ..records import QueueStats
from .stats import summarise

if TYPE_CHECKING:
    from ..app import Conveyor

#: exit code of ``conveyor health`` when a rule is crossed, and when the store is down
EXIT_UNHEALTHY = 1
EXIT_STORE_DOWN = 3


@dataclass(frozen=True, slots=True)
class Thresholds:
    max_depth: int | None = None  # waiting (available) jobs per queue
    max_wait: float | None = None  # seconds the oldest waiting job may wait
    max_failure_rate: float | None = None  # failed / processed attempts over ``window``
    window: float = 300.0
    no_workers: bool = False  # a queue with waiting jobs has no live worker
    max_memory: float | None = None  # MB of resident memory per worker


@dataclass(frozen=True, slots=True)
class Problem:
    rule: str  # store, depth, wait, failure_rate, no_workers, memory, store_risk
    subject: str  # a queue, a worker, or the store
    message: str

    @property
    def key(self) -> str:
        return f"{self.rule}:{self.subject}"

    def to_dict(self) -> dict[str, str]:
        return {"rule": self.rule, "subject": self.subject, "message": self.message}


def check(app: Conveyor, limits: Thresholds) -> list[Problem]:
    """Every problem found now; the store being unreachable is the only one then."""
    try:
        backend = app.backend
        backend.ping()
        now = app.clock()
        stats = backend.queue_stats(now)
        problems = _queue_rules(stats, limits, now)
        if limits.max_failure_rate is not None:
            problems += _failure_rate(app, limits.max_failure_rate, limits.window, now)
        if limits.no_workers or limits.max_memory is not None:
            problems += _worker_rules(app, stats, limits)
        problems += _store_risks(backend)
    except StoreError as exc:
        return [Problem("store", app.display_url, f"{app.display_url} is unreachable: {exc}")]
    return problems


def _queue_rules(stats: list[QueueStats], limits: Thresholds, now: float) -> list[Problem]:
    problems = []
    for s in stats:
        if limits.max_depth is not None and s.available > limits.max_depth:
            problems.append(Problem(
                "depth", s.queue,
                f"queue {s.queue} has {s.available} waiting jobs (--max-depth {limits.max_depth})"))
        age = s.oldest_age(now)
        # jobs of a paused queue wait on purpose; its depth is still worth knowing
        if (limits.max_wait is not None and age is not None and age > limits.max_wait
                and not s.paused):
            problems.append(Problem(
                "wait", s.queue,
                f"queue {s.queue}: the oldest waiting job has waited {age:.0f}s "
                f"(--max-wait {limits.max_wait:g}s)"))
    return problems


def _failure_rate(app: Conveyor, limit: float, window: float, now: float) -> list[Problem]:
    problems = []
    by_queue = summarise(app.backend.metrics_read(now - window, None), lambda s: s.queue)
    for queue in sorted(by_queue):
        summary = by_queue[queue]
        rate = summary.failure_rate
        if rate is not None and rate > limit:
            problems.append(Problem(
                "failure_rate", queue,
                f"queue {queue}: {summary.failed} of {summary.processed} attempts failed in the "
                f"last {window:g}s ({rate:.1%}, --max-failure-rate {limit:.1%})"))
    return problems


def _worker_rules(app: Conveyor, stats: list[QueueStats], limits: Thresholds) -> list[Problem]:
    problems = []
    workers = app.live_workers()
    if limits.no_workers:
        served = {q for w in workers for q in w.queues}
        for s in stats:
            if s.available and not s.paused and s.queue not in served:
                problems.append(Problem(
                    "no_workers", s.queue,
                    f"queue {s.queue} has {s.available} waiting jobs and no live worker "
                    "serves it"))
    if limits.max_memory is not None:
        for w in workers:
            memory = w.info.get("memory_mb")
            if isinstance(memory, int | float) and memory > limits.max_memory:
                problems.append(Problem(
                    "memory", w.name,
                    f"worker {w.name} uses {memory:.0f} MB (--max-memory {limits.max_memory:g})"))
    return problems


def _store_risks(backend: Any) -> list[Problem]:
    """The optional ``store_risks()`` protocol method (see ``backends/base.py``)."""
    risks: Callable[[], list[str]] | None = getattr(backend, "store_risks", None)
    if risks is None:
        return []
    try:
        found = risks()
    except StoreError:
        raise
    except ConveyorError as exc:
        found = [f"could not check the store's settings: {exc}"]
    return [Problem("store_risk", text[:60], text) for text in found]
