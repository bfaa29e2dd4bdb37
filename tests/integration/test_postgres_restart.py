"""PostgreSQL restarted under load (a private server on a free port, never the shared one):
workers reconnect and go on, dispatches fail cleanly or succeed whole, nothing is lost."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor.errors import StoreError

from .pg_support import PG_BIN, OwnPostgres, PgSetup, pg_setup, wait_until

BACKLOG = 3000


@pytest.fixture
def own_server() -> Iterator[OwnPostgres]:
    if not (PG_BIN / "initdb").exists():
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"{PG_BIN} is missing; CI needs PostgreSQL 15's server binaries")
        pytest.skip(f"PostgreSQL server binaries not found in {PG_BIN}")
    server = OwnPostgres()
    try:
        server.start()
        yield server
    finally:
        server.close()


@pytest.mark.slow
@pytest.mark.chaos
def test_restart_mid_run_loses_nothing(own_server: OwnPostgres, tmp_path: Path) -> None:
    from tests.apps import pg_jobs

    with pg_setup(tmp_path, own_server.dsn) as pg:
        pg.prepare()
        pg_jobs.app.use_store(pg.url + "&pool_timeout=2")
        try:
            _run(pg, own_server, pg_jobs)
        finally:
            pg_jobs.app.close()


def _run(pg: PgSetup, server: OwnPostgres, pg_jobs: Any) -> None:
    app = pg_jobs.app
    app.dispatch_many([pg_jobs.count.prepare(n) for n in range(BACKLOG)])
    workers = [pg.worker("--queue", "default", "--concurrency", "4", "--stop-when-empty",
                         "--sleep", "0.5", "--lease", "10") for _ in range(2)]
    accepted: list[int] = []  # ns whose dispatch_many returned
    refused: list[list[int]] = []  # batches whose dispatch_many raised
    errors: list[BaseException] = []
    restarted = threading.Event()
    stop = threading.Event()
    after: list[int] = []  # ns accepted once the server was back

    def dispatcher() -> None:
        n = 100_000
        while not stop.is_set() and len(after) < 300:
            batch = list(range(n, n + 10))
            n += 10
            try:
                app.dispatch_many([pg_jobs.count.prepare(i) for i in batch])
                accepted.extend(batch)
                if restarted.is_set():
                    after.extend(batch)
            except StoreError as exc:  # StoreUnavailable while the server is down
                refused.append(batch)
                errors.append(exc)
                stop.wait(0.05)
            except BaseException as exc:  # anything else is a bug
                errors.append(exc)
                raise

    thread = threading.Thread(target=dispatcher)
    thread.start()
    try:
        wait_until(lambda: len(pg.runs()) >= 300, 60, "workers to get going")
        before = len(pg.runs())
        server.stop("fast")
        server.start()
        restarted.set()
        thread.join(60)
    finally:
        stop.set()
        thread.join(10)
    assert not thread.is_alive()
    for proc in workers:
        assert proc.wait(90) == 0, pg.logs()
    assert before < BACKLOG, "the workers had finished before the restart"
    assert all(isinstance(e, StoreError) for e in errors), errors
    assert len(after) >= 300, "dispatching did not resume after the restart"
    # every connection died with the server: finishing the backlog means they reconnected
    runs = pg.runs()
    expected = set(range(BACKLOG)) | set(accepted)
    assert expected <= set(runs), sorted(expected - set(runs))[:20]
    # a refused batch is all or nothing (the commit may have landed as the server went)
    for batch in refused:
        present = [n in runs for n in batch]
        assert all(present) or not any(present), batch
    assert app.backend.failed_list() == [], pg.logs()
    assert pg.query("SELECT count(*) FROM {s}.jobs") == [(0,)]
    print(f"restart: {before} of {BACKLOG} run before it, {len(refused)} batches refused, "
          f"{len(accepted)} dispatched ok; errors: {errors[:1]}")
