"""What the MySQL process tests share: worker subprocesses of ``tests.apps.mysql_ledger``,
dispatching many jobs, and reading the ledger."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from conveyor import Conveyor

REPO = Path(__file__).resolve().parents[2]
APP = "tests.apps.mysql_ledger:app"


def worker(url: str, prefix: str, *args: str, log: Path) -> subprocess.Popen[bytes]:
    """``python -m conveyor --app … work ARGS`` with its output in ``log``."""
    env = {**os.environ, "CONVEYOR_URL": url, "CONVEYOR_TABLE_PREFIX": prefix,
           "PYTHONUNBUFFERED": "1"}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "conveyor", "--app", APP, "work", "--queue", "default",
             *args], cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)


def dispatch(url: str, prefix: str, count: int, pause: float = 0.0) -> None:
    """Create the ledger, then dispatch jobs 0 … count-1 in bulk."""
    ledger(url, prefix)
    app = Conveyor(url, table_prefix=prefix)
    from tests.apps.mysql_ledger import record

    try:
        for start in range(0, count, 1000):
            jobs = [record.prepare(n, pause) for n in range(start, min(count, start + 1000))]
            app.dispatch_many(jobs)
    finally:
        app.close()


def ledger(url: str, prefix: str) -> dict[int, int]:
    """job number -> runs."""
    from tests.apps import mysql_ledger

    conn = mysql_ledger.connect(url)
    try:
        mysql_ledger.create_ledger(conn, prefix)
        with conn.cursor() as cur:
            cur.execute(f"SELECT job, runs FROM {mysql_ledger.ledger_table(prefix)}")
            return {int(job): int(runs) for job, runs in cur.fetchall()}
    finally:
        conn.close()


def wait_until(condition: Callable[[], bool], timeout: float, what: str,
               interval: float = 0.1) -> None:
    """Poll ``condition`` until true; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def finish(procs: list[subprocess.Popen[bytes]], timeout: float) -> list[int]:
    """Exit codes of the workers; any still running after ``timeout`` is killed (and fails)."""
    codes = []
    deadline = time.monotonic() + timeout
    for proc in procs:
        try:
            codes.append(proc.wait(max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            codes.append(-9)
    return codes
