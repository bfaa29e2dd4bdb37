"""Transactional enqueue on PostgreSQL: a job dispatched with the caller's connection
exists (and runs) if and only if the caller's transaction commits."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from conveyor.testing import run_until_empty
from tests.backends.store_postgres import PG_BASE, PG_HOST, PG_PORT
from tests.conftest import require_server

from .pg_support import PgSetup, pg_setup


@pytest.fixture
def jobs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[PgSetup, Any]]:
    require_server("PostgreSQL", PG_HOST, PG_PORT)
    from tests.apps import pg_jobs

    with pg_setup(tmp_path, PG_BASE) as setup:
        setup.prepare()
        for key, value in setup.env().items():
            if key.startswith("PGAPP_"):
                monkeypatch.setenv(key, value)  # the jobs run in this process
        pg_jobs.app.use_store(setup.url)
        yield setup, pg_jobs
        pg_jobs.app.close()


@pytest.mark.parametrize("cursor_factory", [psycopg.Cursor, psycopg.ClientCursor],
                         ids=["server-binding", "client-binding"])  # Django binds client-side
def test_job_exists_iff_the_callers_transaction_commits(
        jobs: tuple[PgSetup, Any], cursor_factory: type[psycopg.Cursor[Any]]) -> None:
    setup, pg_jobs = jobs
    backend = pg_jobs.app.backend
    assert backend.capabilities.transactional_enqueue
    with psycopg.connect(setup.dsn, cursor_factory=cursor_factory) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero), conn.transaction():
            rolled_back = pg_jobs.record.options(connection=conn).dispatch(1)
            conn.execute("SELECT 1/0")  # the caller's own work fails: all rolls back
        explicit = pg_jobs.record.options(connection=conn).dispatch(3)
        conn.rollback()
    with psycopg.connect(setup.dsn, cursor_factory=cursor_factory) as conn:
        committed = pg_jobs.record.options(connection=conn).dispatch(2)
        assert backend.jobs_get(committed) is None  # invisible until the commit
        conn.commit()
    assert backend.jobs_get(rolled_back) is None and backend.jobs_get(explicit) is None
    assert backend.jobs_get(committed) is not None
    run_until_empty(pg_jobs.app, ["default"])
    assert setup.runs() == {2: 1}


def test_a_connection_that_cannot_work_is_a_clear_error(jobs: tuple[PgSetup, Any]) -> None:
    from conveyor.errors import ConfigurationError

    _setup, pg_jobs = jobs
    with pytest.raises(ConfigurationError, match="DB-API connection"):
        pg_jobs.record.options(connection=object()).dispatch(1)
