"""Dramatiq on Redis: one process with N threads."""

from __future__ import annotations

import sys
import time
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker

from .common import QUEUE, REDIS_URL, Driver, flush_own_redis_db, record_done

broker = RedisBroker(url=REDIS_URL)
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0, actor_name="record")
def record(dispatched_at: float = 0.0, pad: str = "", sleep_ms: float = 0.0) -> None:
    if sleep_ms:
        time.sleep(sleep_ms / 1000.0)
    record_done(dispatched_at)


class DramatiqDriver(Driver):
    name = "dramatiq"
    store = "redis"
    package = "dramatiq"
    notes = "`dramatiq --processes 1 --threads N`"

    def setup(self) -> None:
        flush_own_redis_db()

    def dispatch(self, kwargs: dict[str, Any]) -> None:
        record.send_with_options(kwargs=kwargs)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "dramatiq", "peers.dramatiq_peer", "--processes", "1",
                "--threads", str(concurrency), "--queues", QUEUE]
