"""A test app for PostgreSQL process tests: each job records its run in a table of the
test's schema (``runs``), so tests can count runs per job id.

Environment: CONVEYOR_URL (the store, with ?schema=…), PGAPP_DSN (plain libpq URL) and
PGAPP_SCHEMA (where ``runs`` lives).
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import psycopg

from conveyor import Conveyor

app = Conveyor()
_local = threading.local()


def _conn() -> psycopg.Connection[Any]:
    conn: psycopg.Connection[Any] | None = getattr(_local, "conn", None)
    if conn is None or conn.closed or conn.broken:
        conn = psycopg.connect(os.environ["PGAPP_DSN"], autocommit=True)
        # the runs table needs no crash safety: keep the tests about conveyor, not fsync
        conn.execute("SET synchronous_commit TO off")
        _local.conn = conn
    return conn


def _table() -> str:
    return f'"{os.environ["PGAPP_SCHEMA"]}".runs'


@app.job(tries=20, backoff=0.2)
def record(n: int, delay: float = 0.0) -> None:
    """Insert ``n`` once: a second run of the same job fails on the primary key."""
    started = time.time()
    if delay:
        time.sleep(delay)
    _conn().execute(f"INSERT INTO {_table()} (n, runs, started, pid) VALUES (%s, 1, %s, %s)",
                    (n, started, os.getpid()))


@app.job(tries=20, backoff=0.2)
def count(n: int, delay: float = 0.0) -> None:
    """Count runs of ``n`` (for tests where a kill or a restart may legitimately re-run)."""
    started = time.time()
    if delay:
        time.sleep(delay)
    _conn().execute(
        f"INSERT INTO {_table()} (n, runs, started, pid) VALUES (%s, 1, %s, %s) "
        "ON CONFLICT (n) DO UPDATE SET runs = runs.runs + 1", (n, started, os.getpid()))
