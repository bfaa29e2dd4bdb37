"""The app that batch tests run in workers: ``--app tests.integration.batch_jobs:create_app``.

Callbacks write rows into a separate SQLite file (``BATCH_RESULTS``) so tests count how often
each fired, whatever the store under test.
"""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path

from conveyor import Conveyor, current_job


def results_path() -> str:
    return os.environ["BATCH_RESULTS"]


def write(kind: str, value: str = "") -> None:
    with sqlite3.connect(results_path(), timeout=30) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS results (kind TEXT, value TEXT)")
        conn.execute("INSERT INTO results VALUES (?, ?)", (kind, value))


def count(path: str | Path, kind: str | None = None) -> dict[str, int]:
    with sqlite3.connect(str(path), timeout=30) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS results (kind TEXT, value TEXT)")
        rows = conn.execute("SELECT kind, COUNT(*) FROM results GROUP BY kind").fetchall()
    return {k: n for k, n in rows if kind is None or k == kind}


def runs(path: str | Path) -> list[int]:
    """The job numbers ``bt.work`` ran, one per run (from the ``.runs`` file)."""
    file = Path(str(path) + ".runs")
    if not file.exists():
        return []
    return [int(line) for line in file.read_text().split()]


def create_app(url: str | None = None, prefix: str | None = None) -> Conveyor:
    extra = {} if prefix is None else {"table_prefix": prefix}
    app = Conveyor(url or os.environ["CONVEYOR_URL"], **extra)

    @app.job(name="bt.work", tries=1)
    def work(n: int, fail: bool = False, pause: float = 0.0) -> None:
        # one short O_APPEND write per run: concurrent writers never interleave it
        fd = os.open(results_path() + ".runs", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{n}\n".encode())
        finally:
            os.close(fd)
        if pause:
            time.sleep(pause)  # work that takes time, so a worker can be killed mid-batch
        if fail:
            raise ValueError(f"job {n} fails on purpose")

    @app.job(name="bt.flaky", tries=1)
    def flaky(n: int) -> None:
        if not Path(results_path() + ".fixed").exists():
            raise ValueError(f"job {n} fails until the .fixed file exists")

    @app.job(name="bt.record", tries=3)
    def record(kind: str) -> None:
        ctx = current_job()
        write(kind, ctx.batch_id or "")

    @app.job(name="bt.grow", tries=1)
    def grow(extra: int) -> None:
        batch = current_job().batch
        assert batch is not None
        batch.add([work.prepare(1000 + i) for i in range(extra)])

    return app
