"""Huey on Redis (RedisHuey), SQLite (SqliteHuey) or PostgreSQL (PostgresHuey); the store
comes from BENCH_HUEY_STORE so the worker builds the same Huey as the dispatcher."""

from __future__ import annotations

import os
import sys
import time
from typing import Any

from huey import PostgresHuey, RedisHuey, SqliteHuey

from .common import PG_URL, QUEUE, REDIS_URL, SQLITE_DIR, Driver, flush_own_redis_db, record_done

STORE = os.environ.get("BENCH_HUEY_STORE", "redis")
if STORE == "sqlite":
    huey: Any = SqliteHuey(QUEUE, filename=str(SQLITE_DIR / "huey.db"))
elif STORE == "postgres":
    huey = PostgresHuey(QUEUE, dsn=PG_URL)
else:
    huey = RedisHuey(QUEUE, url=REDIS_URL)


@huey.task(name="record")
def record(dispatched_at: float = 0.0, pad: str = "", sleep_ms: float = 0.0) -> None:
    if sleep_ms:
        time.sleep(sleep_ms / 1000.0)
    record_done(dispatched_at)


class HueyDriver(Driver):
    name = "huey"
    package = "huey"
    notes = "`huey_consumer -k thread -w N` (defaults otherwise)"

    def __init__(self, store: str) -> None:
        self.store = store
        if store != STORE:
            raise RuntimeError("set BENCH_HUEY_STORE before importing peers.huey_peer")

    def setup(self) -> None:
        if self.store == "redis":
            flush_own_redis_db()
        else:  # its own tables in the benchmark's own database / file
            huey.flush()

    def dispatch(self, kwargs: dict[str, Any]) -> None:
        record(**kwargs)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "huey.bin.huey_consumer", "peers.huey_peer.huey",
                "-k", "thread", "-w", str(concurrency), "-q"]

    def worker_env(self, concurrency: int) -> dict[str, str]:
        return {"BENCH_HUEY_STORE": self.store}
