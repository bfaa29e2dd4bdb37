"""saq on Redis or PostgreSQL (asyncio; concurrency = N); store from BENCH_SAQ_STORE."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from saq import Queue

from .aio import Loop
from .common import (
    PG_URL,
    QUEUE,
    REDIS_URL,
    Driver,
    flush_own_redis_db,
    pg_execute,
    record_done,
    venv_bin,
)

STORE = os.environ.get("BENCH_SAQ_STORE", "redis")
URL = PG_URL if STORE == "postgres" else REDIS_URL


async def record(ctx: dict[str, Any], *, dispatched_at: float = 0.0, pad: str = "",
                 sleep_ms: float = 0.0) -> None:
    if sleep_ms:
        await asyncio.sleep(sleep_ms / 1000.0)
    record_done(dispatched_at)


settings = {
    "queue": Queue.from_url(URL, name=QUEUE),
    "functions": [record],
    "concurrency": int(os.environ.get("BENCH_CONCURRENCY", "10")),
}


class SaqDriver(Driver):
    name = "saq"
    package = "saq"
    bulk_api = "asyncio.gather of enqueue"
    notes = "`saq settings --workers 1` with concurrency=N"

    def __init__(self, store: str) -> None:
        self.store = store
        if store != STORE:
            raise RuntimeError("set BENCH_SAQ_STORE before importing peers.saq_peer")

    def setup(self) -> None:
        if self.store == "redis":
            flush_own_redis_db()
        self.aio = Loop()
        self.queue = Queue.from_url(URL, name=QUEUE)
        self.aio.run(self.queue.connect())
        if self.store == "postgres":
            pg_execute("DELETE FROM saq_jobs")

    def dispatch(self, kwargs: dict[str, Any]) -> None:
        self.aio.run(self.queue.enqueue("record", **kwargs))

    def dispatch_bulk(self, many: list[dict[str, Any]]) -> None:
        self.aio.gather([self.queue.enqueue("record", **kw) for kw in many])

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("saq"), "peers.saq_peer.settings", "--workers", "1"]

    def worker_env(self, concurrency: int) -> dict[str, str]:
        return {"BENCH_CONCURRENCY": str(concurrency), "BENCH_SAQ_STORE": self.store}

    def teardown(self) -> None:
        self.aio.run(self.queue.disconnect())
        self.aio.close()
