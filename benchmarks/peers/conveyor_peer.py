"""conveyor itself, on any store (the worker loads conveyor.benchmarking.jobs:make_app)."""

from __future__ import annotations

import sys
from typing import Any

from .common import MYSQL_URL, PG_URL, QUEUE, REDIS_URL, SQLITE_DIR, Driver

PREFIX = "cvbench_"


def store_url(store: str) -> str:
    return {"sqlite": f"sqlite:///{SQLITE_DIR}/conveyor.db", "redis": REDIS_URL,
            "postgres": PG_URL, "mysql": MYSQL_URL}[store]


class ConveyorDriver(Driver):
    name = "conveyor"
    package = "conveyor"
    bulk_api = "app.dispatch_many"
    notes = "`conveyor work --concurrency N` (threads)"

    def __init__(self, store: str) -> None:
        self.store = store
        self.url = store_url(store)

    def setup(self) -> None:
        from conveyor import Conveyor
        from conveyor.benchmarking.jobs import NOOP, register

        self.app = Conveyor(self.url, table_prefix=PREFIX)
        register(self.app)
        self.app.backend.migrate()
        self.app.backend.queue_clear([QUEUE])
        self.job = self.app.registry[NOOP].options(queue=QUEUE)

    def dispatch(self, kwargs: dict[str, Any]) -> None:
        self.job.dispatch(**kwargs)

    def dispatch_bulk(self, many: list[dict[str, Any]]) -> None:
        self.app.dispatch_many([self.job.prepare(**kw) for kw in many])

    def worker_argv(self, concurrency: int) -> list[str]:
        return [sys.executable, "-m", "conveyor", "--app",
                "conveyor.benchmarking.jobs:make_app", "work", "--queue", QUEUE,
                "--concurrency", str(concurrency), "--quiet"]

    def worker_env(self, concurrency: int) -> dict[str, str]:
        return {"CONVEYOR_URL": self.url, "CONVEYOR_TABLE_PREFIX": PREFIX}

    def teardown(self) -> None:
        self.app.backend.queue_clear([QUEUE])
        self.app.close()
