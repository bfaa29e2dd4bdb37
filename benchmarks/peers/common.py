"""What every system's module shares: settings, the record call, the driver interface."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent.parent
WORK_DIR = BENCH_DIR / ".work"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
PG_URL = os.environ.get("BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/bench")
MYSQL_URL = os.environ.get("BENCH_MYSQL_URL", "mysql://root@127.0.0.1:3306/bench")
SQLITE_DIR = Path(os.environ.get("BENCH_SQLITE_DIR", str(WORK_DIR)))
QUEUE = "bench"


def _load_recorder() -> Any:
    """conveyor's recorder module, loaded by path so peers' workers do not import conveyor
    (that would add conveyor's modules to their memory figures)."""
    spec = importlib.util.find_spec("conveyor")
    assert spec is not None and spec.origin is not None, "conveyor is not installed"
    path = Path(spec.origin).parent / "benchmarking" / "recorder.py"
    module_spec = importlib.util.spec_from_file_location("_bench_recorder", path)
    assert module_spec is not None and module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    sys.modules["_bench_recorder"] = module
    module_spec.loader.exec_module(module)
    return module


recorder_module = _load_recorder()
RECORDER = recorder_module.Recorder()
record_done = RECORDER.record


class Driver:
    """A system under test. Subclasses fill in dispatch and the worker command."""

    name = "?"
    store = "?"
    package = "?"
    #: None when the system has no bulk enqueue API; otherwise what was used
    bulk_api: str | None = None
    #: False when one process cannot run jobs concurrently (RQ)
    concurrent = True
    #: how the worker was configured, for the report
    notes = ""

    def setup(self) -> None:
        """Connect and remove this system's leftover jobs (its own keys/tables only)."""

    def dispatch(self, kwargs: dict[str, Any]) -> None:
        raise NotImplementedError

    def dispatch_bulk(self, many: list[dict[str, Any]]) -> None:
        raise NotImplementedError

    def worker_argv(self, concurrency: int) -> list[str]:
        raise NotImplementedError

    def worker_env(self, concurrency: int) -> dict[str, str]:
        return {}

    def teardown(self) -> None:
        """Close connections."""


def venv_bin(name: str) -> str:
    return str(Path(sys.executable).parent / name)


def flush_own_redis_db() -> None:
    """FLUSHDB on the benchmark's own database number (never a shared one)."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    db = client.connection_pool.connection_kwargs.get("db", 0)
    if int(db) in (0,):
        raise SystemExit(f"refusing to flush Redis database {db}: give the benchmark its own "
                         "database number in BENCH_REDIS_URL")
    client.flushdb()
    client.close()


def pg_execute(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(sql)  # fixed statements of this file only


def vacuum_if_autovacuum_off(store: str) -> bool:
    """On a PostgreSQL server with autovacuum off (this development machine's), VACUUM the
    benchmark's database before each phase, as autovacuum would between them: otherwise
    the dead rows of every earlier run slow each later one, whichever system it is (a
    conveyor 1x1 drain fell from 1,610 to 1,017 jobs/s over five runs). Every system gets
    the same; nothing happens with autovacuum on. Returns whether it vacuumed."""
    if store != "postgres":
        return False
    import psycopg

    with psycopg.connect(PG_URL, autocommit=True) as conn:
        row = conn.execute("SHOW autovacuum").fetchone()
        if not row or str(row[0]) != "off":
            return False
        conn.execute("VACUUM")
        return True
