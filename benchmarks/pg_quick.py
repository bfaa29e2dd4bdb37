"""Quick PostgreSQL store figures (no peers): dispatch and dispatch_many rates, and the
no-op drain rate of one worker process at concurrency 1 and 8.

    python benchmarks/pg_quick.py [postgresql://postgres@127.0.0.1:5432/test] [--jobs N]

Works in a schema of its own, dropped at the end. Not a test: numbers vary with load.
"""

from __future__ import annotations

import argparse
import logging
import os
import time

import psycopg

from conveyor import Conveyor
from conveyor.worker.options import WorkerOptions
from conveyor.worker.policy import WorkerDefaults
from conveyor.worker.runner import Worker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("dsn", nargs="?", default="postgresql://postgres@127.0.0.1:5432/test")
    parser.add_argument("--jobs", type=int, default=10_000)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    schema = f"conveyor_bench_{os.urandom(4).hex()}"
    app = Conveyor(f"{args.dsn}?schema={schema}")

    @app.job(name="noop")
    def noop(n: int) -> None:
        return None

    app.backend.migrate()
    try:
        n = min(args.jobs, 3000)
        start = time.perf_counter()
        for i in range(n):
            noop.dispatch(i)
        print(f"dispatch:        {n / (time.perf_counter() - start):8.0f} jobs/s ({n} single)")
        app.backend.queue_clear(["default"])
        start = time.perf_counter()
        for base in range(0, args.jobs, 1000):
            app.dispatch_many([noop.prepare(i) for i in range(base, base + 1000)])
        elapsed = time.perf_counter() - start
        print(f"dispatch_many:   {args.jobs / elapsed:8.0f} jobs/s (batches of 1000)")
        app.backend.queue_clear(["default"])
        for concurrency in (1, 8):
            for base in range(0, args.jobs, 5000):
                app.dispatch_many([noop.prepare(i) for i in range(base, base + 5000)])
            options = WorkerOptions(queues=["default"], concurrency=concurrency,
                                    defaults=WorkerDefaults(), stop_when_empty=True, sleep=0.05)
            worker = Worker(app, options)
            start = time.perf_counter()
            worker.run()
            elapsed = time.perf_counter() - start
            print(f"drain c={concurrency}:       {worker.processed / elapsed:8.0f} jobs/s "
                  f"({worker.processed} no-op jobs, 1 process)")
    finally:
        app.close()
        with psycopg.connect(args.dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


if __name__ == "__main__":
    main()
