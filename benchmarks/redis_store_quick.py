"""Quick figures for the Redis store alone (the comparative peer benchmark lives
elsewhere): drain rate of one worker process at concurrency 1 and 8 (and two processes),
single dispatch and dispatch_many rates, pickup latency at a steady 200 jobs/s.

    .venv/bin/python benchmarks/redis_store_quick.py [--url redis://127.0.0.1:6379/9]

Uses a key prefix of its own and deletes it afterwards (never FLUSHDB).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import redis

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.redis_noop_app import app, noop, probe  # noqa: E402


def worker(url: str, concurrency: int, *extra: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "conveyor", "--app", "benchmarks.redis_noop_app:app",
         "--connection", url, "work", "--queue", "bench", "--concurrency", str(concurrency),
         "--quiet", *extra], cwd=ROOT, env=env)


def drain(url: str, jobs: int, concurrency: int, processes: int = 1) -> float:
    """Jobs per second for worker processes draining a preloaded queue (start-up excluded)."""
    started = time.perf_counter()
    for p in [worker(url, concurrency, "--stop-when-empty") for _ in range(processes)]:
        p.wait()
    startup = time.perf_counter() - started  # an empty queue: start-up and exit only
    app.dispatch_many([noop.prepare() for _ in range(jobs)])
    started = time.perf_counter()
    for p in [worker(url, concurrency, "--stop-when-empty") for _ in range(processes)]:
        p.wait()
    return jobs / (time.perf_counter() - started - startup)


def dispatch_rate(count: int) -> float:
    started = time.perf_counter()
    for _ in range(count):
        noop.dispatch()
    return count / (time.perf_counter() - started)


def bulk_rate(count: int) -> float:
    started = time.perf_counter()
    app.dispatch_many([noop.prepare() for _ in range(count)])
    return count / (time.perf_counter() - started)


def pickup(url: str, base: str, key: str, count: int, rate: float) -> list[float]:
    os.environ.update(PROBE_URL=base, PROBE_KEY=key)
    proc = worker(url, 8)
    client = redis.Redis.from_url(base)
    try:
        time.sleep(1.0)  # let the worker start and go idle
        interval = 1.0 / rate
        next_at = time.perf_counter()
        for _ in range(count):
            next_at += interval
            probe.dispatch(time.time())
            delay = next_at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
        deadline = time.monotonic() + 30
        while client.llen(key) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return sorted(float(v) for v in client.lrange(key, 0, -1))
    finally:
        proc.terminate()
        proc.wait()
        client.close()


def delete_prefix(client: redis.Redis, prefix: str) -> None:
    batch = list(client.scan_iter(match=f"{prefix}:*", count=1000))
    for i in range(0, len(batch), 1000):
        client.delete(*batch[i:i + 1000])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/9")
    parser.add_argument("--jobs", type=int, default=20_000)
    args = parser.parse_args()
    prefix = f"bench{os.getpid()}"
    url = f"{args.url}?prefix={prefix}"
    app.use_store(url)
    client = redis.Redis.from_url(args.url)
    try:
        print(f"store: {args.url} (prefix {prefix}); hiredis: "
              f"{'yes' if redis.utils.HIREDIS_AVAILABLE else 'no'}")
        for concurrency, processes in ((1, 1), (8, 1), (8, 2)):
            rate = drain(url, args.jobs, concurrency, processes)
            print(f"drain, {processes} process(es) x concurrency {concurrency}: "
                  f"{rate:,.0f} jobs/s ({args.jobs:,} no-op jobs)")
        print(f"dispatch (one at a time): {dispatch_rate(5_000):,.0f} jobs/s")
        print(f"dispatch_many (100,000 in one call): {bulk_rate(100_000):,.0f} jobs/s")
        delete_prefix(client, prefix)
        samples = pickup(url, args.url, f"{prefix}:probe", 1_000, 200.0)
        if samples:
            q = statistics.quantiles(samples, n=100)
            print("pickup latency at 200 jobs/s (1 worker, concurrency 8): "
                  f"p50 {q[49] * 1000:.2f} ms, "
                  f"p95 {q[94] * 1000:.2f} ms, p99 {q[98] * 1000:.2f} ms ({len(samples)} jobs)")
    finally:
        delete_prefix(client, prefix)
        client.close()
        app.close()


if __name__ == "__main__":
    main()
