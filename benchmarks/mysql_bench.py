"""Measure the MySQL / MariaDB store: dispatch and bulk dispatch rates, drain rate of one
worker process (concurrency 1 and 8) and idle pickup latency (p50/p99).

    python benchmarks/mysql_bench.py [--url mysql://root@127.0.0.1:3306/conveyor_bench]

Uses its own table prefix (dropped afterwards) in the URL's database (created if missing).
Speed figures live here, never in tests.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from conveyor import Conveyor

REPO = Path(__file__).resolve().parents[1]
app = Conveyor()


# explicit names: this file runs as __main__ here and as a module in the worker
@app.job(queue="default", name="bench.noop")
def noop(n: int) -> None:
    return None


@app.job(queue="default", name="bench.pickup")
def pickup(sent: float) -> None:
    with open(os.environ["BENCH_PICKUP_FILE"], "a", encoding="utf-8") as out:
        out.write(f"{time.time() - sent}\n")


def admin(url: str, create: bool) -> object:
    import pymysql

    from conveyor.backends.mysql.options import parse_mysql_url

    o = parse_mysql_url(url)
    conn = pymysql.connect(host=o.host, port=o.port, user=o.user, password=o.password,
                           autocommit=True)
    if create:
        with conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE IF NOT EXISTS `{o.database}` CHARACTER SET utf8mb4")
    return conn


def drop(url: str, prefix: str) -> None:
    from conveyor.backends.mysql.options import parse_mysql_url

    db = parse_mysql_url(url).database
    conn = admin(url, False)
    with conn.cursor() as cur:  # type: ignore[attr-defined]
        cur.execute("SELECT table_name FROM information_schema.tables WHERE table_schema = %s "
                    "AND table_name LIKE %s", (db, prefix.replace("_", "\\_") + "%"))
        for (name,) in cur.fetchall():
            cur.execute(f"DROP TABLE `{db}`.`{name}`")
    conn.close()  # type: ignore[attr-defined]


def worker(url: str, prefix: str, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "--app", "benchmarks.mysql_bench:app", "work",
         "--queue", "default", "--quiet", *args], cwd=REPO,
        env={**os.environ, "CONVEYOR_URL": url, "CONVEYOR_TABLE_PREFIX": prefix, **(env or {})})


def timed_burst(url: str, prefix: str, concurrency: int) -> float:
    started = time.perf_counter()
    proc = worker(url, prefix, "--concurrency", str(concurrency), "--stop-when-empty")
    assert proc.wait(600) == 0
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default="mysql://root@127.0.0.1:3306/conveyor_bench")
    parser.add_argument("--jobs", type=int, default=5000, help="jobs per drain run")
    parser.add_argument("--samples", type=int, default=200, help="pickup samples")
    args = parser.parse_args()
    url, prefix = args.url, f"b{uuid.uuid4().hex[:8]}_"
    admin(url, True).close()  # type: ignore[attr-defined]
    bench = Conveyor(url, table_prefix=prefix)
    bench.backend.migrate()
    try:
        n = 1000
        started = time.perf_counter()
        for i in range(n):
            bench.dispatch(noop.prepare(i))
        single = n / (time.perf_counter() - started)
        bench.backend.queue_clear(["default"])
        started = time.perf_counter()
        for start in range(0, 20_000, 1000):
            bench.dispatch_many([noop.prepare(i) for i in range(start, start + 1000)])
        bulk = 20_000 / (time.perf_counter() - started)
        bench.backend.queue_clear(["default"])
        print(f"dispatch: {single:,.0f} jobs/s one by one; {bulk:,.0f} jobs/s in batches of 1000")

        backend = bench.backend
        startup = timed_burst(url, prefix, 1)  # an empty queue: process start and exit
        for concurrency in (1, 8):
            for start in range(0, args.jobs, 1000):
                bench.dispatch_many([noop.prepare(i) for i in
                                     range(start, min(args.jobs, start + 1000))])
            took = timed_burst(url, prefix, concurrency) - startup
            assert backend.failed_list() == [], backend.failed_list()[0].exception
            print(f"drain, 1 process, concurrency {concurrency}: "
                  f"{args.jobs / took:,.0f} jobs/s ({args.jobs} no-op jobs in {took:.2f}s, "
                  f"process start/stop of {startup:.2f}s excluded)")

        with tempfile.TemporaryDirectory() as tmp:
            record = Path(tmp) / "pickup.txt"
            proc = worker(url, prefix, "--concurrency", "1",
                          env={"BENCH_PICKUP_FILE": str(record)})
            try:
                time.sleep(2.0)  # let it start and go idle
                for _ in range(args.samples):
                    bench.dispatch(pickup.prepare(time.time()))
                    time.sleep(0.1 + 0.1 * (uuid.uuid4().int % 100) / 100)
                deadline = time.monotonic() + 30
                while time.monotonic() < deadline:
                    got = record.read_text().split() if record.exists() else []
                    if len(got) >= args.samples:
                        break
                    time.sleep(0.1)
            finally:
                proc.terminate()
                proc.wait(30)
            values = sorted(float(v) * 1000 for v in record.read_text().split())
            p99 = values[min(len(values) - 1, int(len(values) * 0.99))]
            print(f"pickup of an idle worker: p50 {statistics.median(values):.1f} ms, "
                  f"p99 {p99:.1f} ms ({len(values)} samples)")
    finally:
        bench.close()
        drop(url, prefix)


if __name__ == "__main__":
    main()
