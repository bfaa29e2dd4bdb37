"""arq on Redis (asyncio; max_jobs = concurrency)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq.connections import RedisSettings, create_pool

from .aio import Loop
from .common import REDIS_URL, Driver, flush_own_redis_db, record_done, venv_bin


async def record(ctx: dict[str, Any], dispatched_at: float = 0.0, pad: str = "",
                 sleep_ms: float = 0.0) -> None:
    if sleep_ms:
        await asyncio.sleep(sleep_ms / 1000.0)
    record_done(dispatched_at)


class WorkerSettings:
    functions = [record]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "10"))
    keep_result = 0
    # arq's default poll_delay of 0.5 s caps max_jobs=1 at 2 jobs/s; give it a fair chance
    poll_delay = 0.01


class ArqDriver(Driver):
    name = "arq"
    store = "redis"
    package = "arq"
    bulk_api = "asyncio.gather of enqueue_job"
    notes = "`arq WorkerSettings` with max_jobs=N, keep_result=0, poll_delay=0.01"

    def setup(self) -> None:
        flush_own_redis_db()
        self.aio = Loop()
        self.pool = self.aio.run(create_pool(RedisSettings.from_dsn(REDIS_URL)))

    def dispatch(self, kwargs: dict[str, Any]) -> None:
        self.aio.run(self.pool.enqueue_job("record", **kwargs))

    def dispatch_bulk(self, many: list[dict[str, Any]]) -> None:
        self.aio.gather([self.pool.enqueue_job("record", **kw) for kw in many])

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("arq"), "peers.arq_peer.WorkerSettings"]

    def worker_env(self, concurrency: int) -> dict[str, str]:
        return {"BENCH_CONCURRENCY": str(concurrency)}

    def teardown(self) -> None:
        self.aio.run(self.pool.aclose())
        self.aio.close()
