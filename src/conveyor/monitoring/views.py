"""What the monitor shows, as plain data: the CLI renders it (table or JSON), and health
checks, the Prometheus exporter and the dashboard read the same functions. Everything
comes through the store protocol, so every store shows the same thing."""

from __future__ import annotations

import contextlib
import json
from typing import TYPE_CHECKING, Any

from ..records import FailedRecord, QueueStats, WorkerInfo
from ..routing import DEFAULT_WORKER_QUEUES
from .stats import Summary, summarise

if TYPE_CHECKING:
    from ..app import Conveyor

#: the overview's throughput and runtimes are over this window unless told otherwise
OVERVIEW_WINDOW = 300.0


def queue_order(queue: str) -> tuple[int, str]:
    """The standard worker order first, then other queues by name."""
    order = DEFAULT_WORKER_QUEUES.index(queue) if queue in DEFAULT_WORKER_QUEUES else 99
    return order, queue


def overview(app: Conveyor, window: float = OVERVIEW_WINDOW) -> dict[str, Any]:
    """Per queue: waiting, scheduled, running, failed, paused, oldest waiting age,
    throughput per minute, average and p95 runtime, live workers serving it."""
    now = app.clock()
    backend = app.backend
    stats = {s.queue: s for s in backend.queue_stats(now)}
    for queue in backend.queues_paused():
        stats.setdefault(queue, QueueStats(queue)).paused = True
    by_queue = summarise(backend.metrics_read(now - window, None), lambda s: s.queue)
    workers = app.live_workers()
    rows = []
    for queue in sorted(set(stats) | set(by_queue), key=queue_order):
        summary = by_queue.get(queue, Summary()).to_dict(window)
        row = stats.get(queue, QueueStats(queue)).to_dict(now)
        row.update(
            throughput_per_min=summary["throughput_per_min"],
            runtime_avg=summary["runtime_avg"],
            runtime_p95=summary["runtime_p95"],
            workers=sum(1 for w in workers if queue in w.queues),
        )
        rows.append(row)
    return {"store": app.display_url, "now": now, "window": window, "queues": rows,
            "workers": len(workers)}


def statistics(app: Conveyor, since: float) -> dict[str, Any]:
    """Detailed statistics over the last ``since`` seconds: in total, per queue and per
    (queue, job name)."""
    now = app.clock()
    samples = app.backend.metrics_read(now - since, None)
    total = Summary()
    for sample in samples:
        total.add(sample)
    queues = summarise(samples, lambda s: s.queue)
    jobs = summarise(samples, lambda s: (s.queue, s.name))
    return {
        "store": app.display_url,
        "now": now,
        "since": since,
        "total": total.to_dict(since),
        "queues": [{"queue": q} | queues[q].to_dict(since)
                   for q in sorted(queues, key=queue_order)],
        "jobs": [{"queue": q, "name": n} | jobs[(q, n)].to_dict(since)
                 for q, n in sorted(jobs, key=lambda k: (queue_order(k[0]), k[1]))],
    }


def worker_row(worker: WorkerInfo, now: float) -> dict[str, Any]:
    info = worker.info
    current = [dict(job) for job in info.get("current") or []]
    for job in current:
        started = job.get("started")
        job["running_for"] = round(now - started, 3) if isinstance(started, int | float) else None
    return {
        "name": worker.name,
        "host": worker.host,
        "pid": worker.pid,
        "state": worker.state,
        "queues": list(worker.queues),
        "concurrency": worker.concurrency,
        "current": current,
        "processed": info.get("processed", 0),
        "failed": info.get("failed", 0),
        "memory_mb": info.get("memory_mb"),
        "started_at": worker.started_at,
        "last_heartbeat": worker.last_heartbeat,
        "heartbeat_age": round(max(0.0, now - worker.last_heartbeat), 3),
    }


def workers(app: Conveyor) -> list[dict[str, Any]]:
    """Live workers (records of dead ones are removed on the way)."""
    now = app.clock()
    return [worker_row(w, now) for w in app.live_workers()]


def failed_row(record: FailedRecord) -> dict[str, Any]:
    return {"id": record.id, "queue": record.queue, "name": record.name,
            "attempts": record.attempts, "failed_at": record.failed_at,
            "summary": record.summary}


def failed_detail(record: FailedRecord) -> dict[str, Any]:
    """The whole record, with the payload decoded when it is JSON."""
    data = record.to_dict() | {"summary": record.summary}
    with contextlib.suppress(ValueError):  # otherwise shown as stored
        data["payload"] = json.loads(record.payload)
    return data
