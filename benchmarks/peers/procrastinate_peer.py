"""procrastinate on PostgreSQL (sync jobs; worker --concurrency N)."""

from __future__ import annotations

import time
from typing import Any

import procrastinate

from .common import PG_URL, QUEUE, Driver, pg_execute, record_done, venv_bin

app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=PG_URL))


@app.task(queue=QUEUE, name="record")
def record(dispatched_at: float = 0.0, pad: str = "", sleep_ms: float = 0.0) -> None:
    if sleep_ms:
        time.sleep(sleep_ms / 1000.0)
    record_done(dispatched_at)


class ProcrastinateDriver(Driver):
    name = "procrastinate"
    store = "postgres"
    package = "procrastinate"
    bulk_api = "Task.batch_defer"
    notes = "`procrastinate worker --concurrency N`"

    def setup(self) -> None:
        self.ctx = app.open()
        self.ctx.__enter__()
        try:
            pg_execute("TRUNCATE procrastinate_jobs CASCADE")
        except Exception:  # first run: no schema yet
            app.schema_manager.apply_schema()

    def dispatch(self, kwargs: dict[str, Any]) -> None:
        record.defer(**kwargs)

    def dispatch_bulk(self, many: list[dict[str, Any]]) -> None:
        record.batch_defer(*many)

    def worker_argv(self, concurrency: int) -> list[str]:
        return [venv_bin("procrastinate"), "--app", "peers.procrastinate_peer.app", "worker",
                "--queues", QUEUE, "--concurrency", str(concurrency)]

    def teardown(self) -> None:
        self.ctx.__exit__(None, None, None)
