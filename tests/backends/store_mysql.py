"""The MySQL / MariaDB store for the conformance suite: the shared MariaDB on 127.0.0.1:3306,
a database of this suite's own, and a table prefix of each test's own (dropped after)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .stores import store

HOST, PORT = "127.0.0.1", 3306
DATABASE = os.environ.get("CONVEYOR_TEST_MYSQL_DB", "conveyor_test")
URL = f"mysql://root@{HOST}:{PORT}/{DATABASE}"


def admin_connection(database: str | None = DATABASE):  # type: ignore[no-untyped-def]
    import pymysql

    return pymysql.connect(host=HOST, port=PORT, user="root", password="", database=database,
                           autocommit=True, charset="utf8mb4")


def ensure_database() -> None:
    conn = admin_connection(None)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{DATABASE}` CHARACTER SET utf8mb4")
    finally:
        conn.close()


def drop_prefixed(prefix: str) -> None:
    """Drop every table whose name starts with ``prefix``."""
    conn = admin_connection()
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT table_name FROM information_schema.tables "
                        "WHERE table_schema = %s AND table_name LIKE %s",
                        (DATABASE, prefix.replace("_", "\\_") + "%"))
            for (name,) in cur.fetchall():
                cur.execute(f"DROP TABLE IF EXISTS `{DATABASE}`.`{name}`")
    finally:
        conn.close()


def new_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}_"


@contextmanager
def mysql_tables() -> Iterator[tuple[str, str]]:
    from tests.conftest import require_server

    require_server("MariaDB", HOST, PORT)
    ensure_database()
    prefix = new_prefix()
    try:
        yield URL, prefix
    finally:
        drop_prefixed(prefix)


@store("mysql")
@contextmanager
def mysql_store(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with mysql_tables() as found:
        yield found
