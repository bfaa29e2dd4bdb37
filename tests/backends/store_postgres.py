"""The conformance suite on PostgreSQL: each test gets a schema of its own in database
``test`` (and a table prefix, so both are exercised), dropped afterwards."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import require_server

from .stores import store

PG_HOST, PG_PORT = "127.0.0.1", 5432
PG_BASE = os.environ.get("CONVEYOR_TEST_POSTGRES", f"postgresql://postgres@{PG_HOST}:{PG_PORT}/test")


@contextmanager
def postgres_schema() -> Iterator[tuple[str, str]]:
    """A fresh schema: (url with ?schema=…, schema name); dropped on exit."""
    import psycopg

    require_server("PostgreSQL", PG_HOST, PG_PORT)
    schema = f"conveyor_t_{os.urandom(6).hex()}"
    try:
        yield f"{PG_BASE}?schema={schema}", schema
    finally:
        with psycopg.connect(PG_BASE, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


@store("postgres")
@contextmanager
def postgres_store(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with postgres_schema() as (url, _schema):
        yield url, "cv_"
