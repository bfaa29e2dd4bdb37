"""A test app for the MySQL process tests: every run of a job is written to a ledger.

``ledger(job PRIMARY KEY, runs, pid)`` in the store's own database: a job inserts its
number or, when a previous run already did, counts the run again. Tests read it to prove
each job ran (nothing lost) and how often (exactly once, or again only when a kill or a
restart explains it). The store comes from ``CONVEYOR_URL`` / ``CONVEYOR_TABLE_PREFIX``.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pymysql

from conveyor import Conveyor
from conveyor.backends.mysql.options import parse_mysql_url

app = Conveyor()
_local = threading.local()
LEDGER_RETRY_SECONDS = 60.0  # a job rides over a store restart instead of failing


def ledger_table(prefix: str | None = None) -> str:
    return (os.environ.get("CONVEYOR_TABLE_PREFIX", "") if prefix is None else prefix) + "ledger"


def connect(url: str | None = None) -> Any:
    opts = parse_mysql_url(url or os.environ["CONVEYOR_URL"])
    return pymysql.connect(host=opts.host, port=opts.port, user=opts.user,
                           password=opts.password, database=opts.database, autocommit=True,
                           connect_timeout=2, read_timeout=10, write_timeout=10)


def create_ledger(conn: Any, prefix: str | None = None) -> None:
    with conn.cursor() as cur:
        cur.execute(f"CREATE TABLE IF NOT EXISTS {ledger_table(prefix)} (job INT PRIMARY KEY, "
                    "runs INT NOT NULL, pid INT NOT NULL) ENGINE=InnoDB")


def _write(n: int) -> None:
    conn = getattr(_local, "conn", None)
    if conn is None:
        conn = _local.conn = connect()
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {ledger_table()} (job, runs, pid) VALUES (%s, 1, %s) "
                    "ON DUPLICATE KEY UPDATE runs = runs + 1", (n, os.getpid()))


@app.job(queue="default", tries=5)
def record(n: int, pause: float = 0.0) -> None:
    if pause:
        time.sleep(pause)  # a job that takes a while, so kills find jobs in flight
    deadline = time.monotonic() + LEDGER_RETRY_SECONDS
    while True:
        try:
            _write(n)
            return
        except (pymysql.err.OperationalError, pymysql.err.InterfaceError):
            _local.conn = None
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
