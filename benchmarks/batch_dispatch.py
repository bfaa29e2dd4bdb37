"""Bulk dispatch of one big batch versus the same jobs by ``dispatch_many``, and the cost of
batch bookkeeping when a burst worker drains it.

    python benchmarks/batch_dispatch.py URL [--jobs 100000] [--drain 10000]

URL is a store URL (sqlite:////tmp/b.db, postgresql://…?schema=…, redis://…/9?prefix=…).
Use a scratch database / schema / prefix: the benchmark leaves its rows behind. Not a test:
the figures vary with the machine's load.
"""

from __future__ import annotations

import argparse
import logging
import time

from conveyor import Conveyor
from conveyor.testing import run_until_empty


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("url")
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--drain", type=int, default=10_000)
    args = parser.parse_args()
    logging.disable(logging.INFO)
    app = Conveyor(args.url)
    app.backend.migrate()

    @app.job(name="bench.noop", queue="bench")
    def noop(n: int) -> None:
        """Nothing: the figures measure conveyor and the store."""

    @app.job(name="bench.done", queue="bench")
    def done() -> None:
        """The batch's then callback."""

    jobs = [noop.prepare(i) for i in range(args.jobs)]
    started = time.perf_counter()
    app.dispatch_many(jobs)
    plain = time.perf_counter() - started
    app.backend.queue_clear(["bench"])
    started = time.perf_counter()
    app.batch(jobs, name="bench").then(done.prepare()).dispatch()
    batch = time.perf_counter() - started
    app.backend.queue_clear(["bench"])
    print(f"{args.jobs} jobs: dispatch_many {plain:.2f}s ({args.jobs / plain:,.0f}/s), "
          f"one batch {batch:.2f}s ({args.jobs / batch:,.0f}/s)")

    for label, make in (("plain", lambda: app.dispatch_many(jobs[:args.drain])),
                        ("batch", lambda: app.batch(jobs[:args.drain]).dispatch())):
        make()
        started = time.perf_counter()
        run_until_empty(app, ["bench"], concurrency=8)
        took = time.perf_counter() - started
        print(f"drain {args.drain} {label} jobs, one worker x8: {took:.2f}s "
              f"({args.drain / took:,.0f}/s)")
    app.close()


if __name__ == "__main__":
    main()
