"""RQ on Redis: SimpleWorker (no fork per job, RQ's fastest); no in-process concurrency."""

from __future__ import annotations

import time
from typing import Any

from .common import QUEUE, REDIS_URL, Driver, flush_own_redis_db, record_done, venv_bin


def record(dispatched_at: float = 0.0, pad: str = "", sleep_ms: float = 0.0) -> None:
    if sleep_ms:
        time.sleep(sleep_ms / 1000.0)
    record_done(dispatched_at)


class RQDriver(Driver):
    name = "rq"
    store = "redis"
    package = "rq"
    bulk_api = "Queue.enqueue_many"
    concurrent = False
    notes = "`rq worker --worker-class rq.worker.SimpleWorker` (one job at a time per process)"

    def setup(self) -> None:
        from redis import Redis
        from rq import Queue

        flush_own_redis_db()
        self.redis = Redis.from_url(REDIS_URL)
        self.queue = Queue(QUEUE, connection=self.redis)

    def dispatch(self, kwargs: dict[str, Any]) -> None:
        self.queue.enqueue(record, kwargs=kwargs)

    def dispatch_bulk(self, many: list[dict[str, Any]]) -> None:
        from rq import Queue

        self.queue.enqueue_many([Queue.prepare_data(record, kwargs=kw) for kw in many])

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("rq"), "worker", "-u", REDIS_URL, "--worker-class",
                "rq.worker.SimpleWorker", "--logging_level", "WARNING", QUEUE]

    def teardown(self) -> None:
        self.redis.close()
