"""Celery on Redis (solo pool at concurrency 1, threads pool above)."""

from __future__ import annotations

import sys
import time
from typing import Any

from celery import Celery

from .common import QUEUE, REDIS_URL, Driver, flush_own_redis_db, record_done

app = Celery("bench", broker=REDIS_URL)
app.conf.update(task_ignore_result=True, task_default_queue=QUEUE,
                broker_connection_retry_on_startup=True, worker_hijack_root_logger=False)


@app.task(name="bench.record", ignore_result=True)
def record(dispatched_at: float = 0.0, pad: str = "", sleep_ms: float = 0.0) -> None:
    if sleep_ms:
        time.sleep(sleep_ms / 1000.0)
    record_done(dispatched_at)


class CeleryDriver(Driver):
    name = "celery"
    store = "redis"
    package = "celery"
    notes = "`celery worker --pool solo` (c=1) / `--pool threads -c N`; no gossip/mingle/heartbeat"

    def setup(self) -> None:
        flush_own_redis_db()

    def dispatch(self, kwargs: dict[str, Any]) -> None:
        record.apply_async(kwargs=kwargs)

    def worker_argv(self, concurrency: int) -> list[str]:
        pool = ["--pool", "solo"] if concurrency == 1 else ["--pool", "threads",
                                                            "-c", str(concurrency)]
        return [sys.executable, "-m", "celery", "-A", "peers.celery_peer", "worker", *pool,
                "-Q", QUEUE, "--loglevel", "WARNING", "--without-gossip", "--without-mingle",
                "--without-heartbeat"]
