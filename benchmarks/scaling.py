"""Scaling curves: does a dispatch or a reserve cost more when a million jobs wait?

    benchmarks/.venv/bin/python benchmarks/scaling.py --stores sqlite,postgres \
        [--backlogs 0,100000,1000000] [--scheduled 100000] [--ops 1000] [--memory-jobs 200000]

For each store and backlog size the queue is filled (with ``dispatch_many``) to that many
waiting jobs plus ``--scheduled`` jobs due in an hour, then the script times, through the
store protocol in this process: ``--ops`` single dispatches, and ``--ops`` rounds of
"reserve 1 + complete it" and of "reserve 8 + complete them" (the worker's two hot
calls). Flat is the target: cost at the largest backlog within 1.5x of the empty one.
``--memory-jobs`` then drains that many no-op jobs with one real ``conveyor work``
process (concurrency 8) and samples its resident memory as it goes; on a PostgreSQL
server with autovacuum off it vacuums the jobs table every 20 s meanwhile, as autovacuum
would (without it the drain slows tenfold, see docs/postgres.md). ``--processes`` then
drains ``--process-jobs`` no-op jobs with 1, 2 and 4 ``conveyor work`` processes
(concurrency 8 each), medians of ``--process-runs`` runs: throughput as workers are added.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from peers.common import WORK_DIR, vacuum_if_autovacuum_off  # noqa: E402
from peers.conveyor_peer import store_url as bench_store_url  # noqa: E402

from conveyor import Conveyor  # noqa: E402
from conveyor.benchmarking.jobs import NOOP, register  # noqa: E402
from conveyor.benchmarking.measure import Bench, BenchConfig  # noqa: E402
from conveyor.benchmarking.procs import rss_mb, start_worker, stop_workers  # noqa: E402
from conveyor.benchmarking.recorder import record_count  # noqa: E402

PREFIX = "cvscale_"
#: a Redis database apart from run.sh's (which flushes its own between systems)
SCALE_REDIS_URL = os.environ.get("BENCH_SCALE_REDIS_URL", "redis://127.0.0.1:6379/15")


def store_url(store: str) -> str:
    return SCALE_REDIS_URL if store == "redis" else bench_store_url(store)

QUEUE = "scale"
CHUNK = 10_000


def fill(app: Conveyor, job: Any, count: int, delay: float = 0.0) -> float:
    started = time.perf_counter()
    pending = job.options(delay=delay) if delay else job
    for start in range(0, count, CHUNK):
        n = min(CHUNK, count - start)
        app.dispatch_many([pending.prepare(dispatched_at=0.0) for _ in range(n)])
    return time.perf_counter() - started


def per_op_us(fn: Any, ops: int) -> float:
    started = time.perf_counter()
    for _ in range(ops):
        fn()
    return (time.perf_counter() - started) / ops * 1e6


def measure_costs(app: Conveyor, job: Any, ops: int) -> dict[str, float]:
    backend = app.backend
    out: dict[str, float] = {}
    out["dispatch_us"] = per_op_us(lambda: job.dispatch(dispatched_at=0.0), ops)

    def reserve(limit: int) -> None:
        got = backend.jobs_reserve([QUEUE], limit, 30.0, "scale", app.clock())
        if len(got) != limit:
            raise RuntimeError(f"reserve found {len(got)} jobs, wanted {limit}")
        backend.jobs_complete([j.lease for j in got])

    out["reserve1_complete_us"] = per_op_us(lambda: reserve(1), ops)
    out["reserve8_complete_us_per_job"] = per_op_us(lambda: reserve(8), ops // 2) / 8
    return out


def scaling(store: str, backlogs: list[int], scheduled: int, ops: int) -> list[dict[str, Any]]:
    app = Conveyor(store_url(store), table_prefix=PREFIX)
    register(app)
    app.backend.migrate()
    app.backend.queue_clear([QUEUE])
    job = app.registry[NOOP].options(queue=QUEUE)
    rows = []
    have = 0
    try:
        if scheduled:
            print(f"  {store}: {scheduled:,} scheduled jobs", file=sys.stderr, flush=True)
            fill(app, job, scheduled, delay=3600.0)
        for backlog in sorted(backlogs):
            took = fill(app, job, backlog - have)
            print(f"  {store}: backlog {backlog:,} (filled in {took:.0f} s)", file=sys.stderr,
                  flush=True)
            have = backlog
            # the measured dispatches add `ops` jobs; the reserves consume ops + 4 * ops
            fill(app, job, 4 * ops)
            costs = measure_costs(app, job, ops)
            rows.append({"store": store, "waiting": backlog, "scheduled": scheduled, **costs})
            print("   " + json.dumps(rows[-1]), file=sys.stderr, flush=True)
            have = backlog  # dispatches and reserves balanced out
    finally:
        app.backend.queue_clear([QUEUE])
        app.close()
    return rows


VACUUM_EVERY = 20.0


def _vacuum_standing_in_for_autovacuum(store: str) -> Any:
    """On a PostgreSQL server with autovacuum off (the development machine's), vacuum now
    and return a function that vacuums again, to be called every VACUUM_EVERY seconds as
    autovacuum would; without it a million-job drain slows tenfold (see docs/postgres.md).
    None elsewhere."""
    if not vacuum_if_autovacuum_off(store):  # the dead rows of the previous measurements
        return None
    print(f"  autovacuum is off on this server: VACUUM every {VACUUM_EVERY:g} s")
    return lambda: vacuum_if_autovacuum_off(store)


def memory(store: str, jobs: int) -> dict[str, Any]:
    """Drain ``jobs`` no-op jobs with one worker; RSS after 10% of them and at the end."""
    app = Conveyor(store_url(store), table_prefix=PREFIX)
    register(app)
    app.backend.migrate()
    app.backend.queue_clear([QUEUE])
    job = app.registry[NOOP].options(queue=QUEUE)
    fill(app, job, jobs)
    tmp = Path(tempfile.mkdtemp(prefix="conveyor-scale-"))
    record = tmp / "records.bin"
    vacuum = _vacuum_standing_in_for_autovacuum(store)
    worker = start_worker(store_url(store), PREFIX, QUEUE, 8, record, burst=True)
    samples: list[tuple[int, float]] = []
    last_vacuum = time.monotonic()
    try:
        while worker.alive():
            samples.append((record_count(record), rss_mb(worker.pid)))
            time.sleep(0.5)
            if vacuum is not None and time.monotonic() - last_vacuum >= VACUUM_EVERY:
                vacuum()
                last_vacuum = time.monotonic()
    finally:
        stop_workers([worker])
        app.close()
    samples = [s for s in samples if s[1] > 0]
    early = next((mb for done, mb in samples if done >= jobs // 10), None)
    return {"store": store, "jobs": jobs, "rss_after_10pct_mb": early,
            "rss_peak_mb": max((mb for _, mb in samples), default=None),
            "rss_last_mb": samples[-1][1] if samples else None,
            "ran": record_count(record)}


def processes(store: str, counts: list[int], jobs: int, runs: int) -> list[dict[str, Any]]:
    """Drain rate with 1, 2, 4 … worker processes at concurrency 8, median of ``runs``."""
    bench = Bench(BenchConfig(url=store_url(store), prefix=PREFIX, queue=QUEUE))
    rows = []
    try:
        bench.app.backend.migrate()
        bench.clean()
        vacuum = _vacuum_standing_in_for_autovacuum(store)
        for count in counts:
            rates = []
            for _ in range(runs):
                if vacuum is not None:
                    vacuum()
                bench.fill(jobs)
                rates.append(bench.drain(count, 8, jobs).rate)
                bench.clean()
            rows.append({"store": store, "processes": count, "jobs": jobs,
                         "rate": statistics.median(rates), "runs": rates})
            print("   " + json.dumps(rows[-1]), file=sys.stderr, flush=True)
    finally:
        bench.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--backlogs", default="0,100000,1000000")
    parser.add_argument("--scheduled", type=int, default=100_000)
    parser.add_argument("--ops", type=int, default=1000)
    parser.add_argument("--memory-jobs", type=int, default=200_000)
    parser.add_argument("--processes", default="1,2,4",
                        help="worker process counts for the throughput curve ('' skips it)")
    parser.add_argument("--process-jobs", type=int, default=20_000)
    parser.add_argument("--process-runs", type=int, default=3)
    args = parser.parse_args()
    WORK_DIR.mkdir(exist_ok=True)
    stamp = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    rows: list[dict[str, Any]] = []
    mem: list[dict[str, Any]] = []
    procs: list[dict[str, Any]] = []
    counts = [int(p) for p in args.processes.split(",") if p]
    for store in filter(None, args.stores.split(",")):
        if args.backlogs:
            rows += scaling(store, [int(b) for b in args.backlogs.split(",")],
                            args.scheduled, args.ops)
        if counts:
            procs += processes(store, counts, args.process_jobs, args.process_runs)
        if args.memory_jobs:
            mem.append(memory(store, args.memory_jobs))
            print("   " + json.dumps(mem[-1]), file=sys.stderr, flush=True)
    command = " ".join(["benchmarks/scaling.py", *sys.argv[1:]])
    lines = [f"# Scaling {stamp}", "", f"Command: `{command}`"]
    if rows:
        lines += ["", f"Per-job cost in µs through the store protocol, {args.ops} operations "
                  f"each, with {args.scheduled:,} jobs scheduled for later in the same queue.",
                  "", "| store | waiting | dispatch µs | reserve 1 + complete µs | "
                  "reserve 8 + complete µs/job |", "|---|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(f"| {r['store']} | {r['waiting']:,} | {r['dispatch_us']:.0f} | "
                     f"{r['reserve1_complete_us']:.0f} | "
                     f"{r['reserve8_complete_us_per_job']:.0f} |")
    if procs:
        lines += ["", f"Drain rate by worker processes (concurrency 8 each), "
                  f"{args.process_jobs:,} no-op jobs, median of {args.process_runs} runs:", "",
                  "| store | processes | jobs/s | runs |", "|---|---:|---:|---|"]
        for p in procs:
            lines.append(f"| {p['store']} | {p['processes']} | {p['rate']:,.0f} | "
                         + ", ".join(f"{r:,.0f}" for r in p["runs"]) + " |")
    if mem:
        lines += ["", "Worker memory while draining (1 process, concurrency 8):", "",
                  "| store | jobs run | RSS after 10% MB | peak RSS MB | last RSS MB |",
                  "|---|---:|---:|---:|---:|"]
        for m in mem:
            lines.append(f"| {m['store']} | {m['ran']:,} | {m['rss_after_10pct_mb'] or 0:.1f} | "
                         f"{m['rss_peak_mb'] or 0:.1f} | {m['rss_last_mb'] or 0:.1f} |")
    text = "\n".join(lines) + "\n"
    out = BENCH_DIR / "results" / f"{stamp}-scaling-{args.stores.replace(',', '-')}.md"
    out.parent.mkdir(exist_ok=True)
    out.write_text(text)
    print(text)
    os.environ.pop("CONVEYOR_BENCH_RECORD", None)


if __name__ == "__main__":
    main()
