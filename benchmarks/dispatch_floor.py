"""How fast can a confirmed single dispatch be on this machine? Four loops (three without
huey installed), interleaved in one process, each round dispatching the same number of
jobs one call at a time:

- ``conveyor``: ``job.dispatch()`` on the Redis store, its real insert script;
- ``conveyor, empty script``: the same client path with the insert script swapped for one
  that does nothing (``return 1``): the ceiling of any scripted, confirmed dispatch;
- ``LPUSH (Huey-shaped)``: ``pickle.dumps`` of a Huey-like message and a redis-py
  ``LPUSH``, what Huey's enqueue sends;
- ``Huey``: Huey's own enqueue (a ``RedisHuey`` task called), when huey is installed
  (it is in the benchmarks' venv).

    benchmarks/.venv/bin/python benchmarks/dispatch_floor.py [--url redis://127.0.0.1:6379/14]

Uses a key prefix of its own and deletes its keys afterwards (never FLUSHDB).
"""

from __future__ import annotations

import argparse
import pickle
import statistics
import time
from collections.abc import Callable

import redis

try:
    from huey import RedisHuey
except ImportError:  # the project's own venv: the three other loops
    RedisHuey = None

from conveyor import Conveyor
from conveyor.backends.redis import RedisBackend

PREFIX = "cvfloor_"
LIST = "cvfloor_huey_shaped"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="redis://127.0.0.1:6379/14")
    parser.add_argument("--jobs", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()

    app = Conveyor(opts.url, table_prefix=PREFIX)
    app.job(name="floor", queue="floor", tries=1)(lambda dispatched_at=0.0: None)
    backend = app.backend
    assert isinstance(backend, RedisBackend), "dispatch_floor measures the Redis store"
    backend.migrate()
    job = app.registry["floor"]
    script = backend.scripts._scripts["insert"]  # the sha the client sends
    real, empty = script.sha, backend.client.script_load("return 1")
    plain = redis.Redis.from_url(opts.url)

    def conveyor_real() -> None:
        for _ in range(opts.jobs):
            job.dispatch(dispatched_at=1.0)

    def conveyor_empty() -> None:
        script.sha = empty
        try:
            for _ in range(opts.jobs):
                job.dispatch(dispatched_at=1.0)
        finally:
            script.sha = real

    def huey_shaped() -> None:
        for _ in range(opts.jobs):
            message = pickle.dumps(("0123456789abcdef", "queue_task_floor", None, 0, None,
                                    ((), {"dispatched_at": 1.0}), None, None, None))
            plain.lpush(LIST, message)

    loops: dict[str, Callable[[], None]] = {
        "conveyor": conveyor_real, "conveyor, empty script": conveyor_empty,
        "LPUSH (Huey-shaped)": huey_shaped}
    if RedisHuey is not None:
        huey = RedisHuey("cvfloor", url=opts.url)
        task = huey.task(name="floor")(lambda dispatched_at=0.0: None)

        def huey_itself() -> None:
            for _ in range(opts.jobs):
                task(dispatched_at=1.0)

        loops["Huey"] = huey_itself
    rates: dict[str, list[float]] = {name: [] for name in loops}
    try:
        for _ in range(opts.rounds):
            for name, loop in loops.items():
                started = time.perf_counter()
                loop()
                rates[name].append(opts.jobs / (time.perf_counter() - started))
            backend.queue_clear(["floor"])
            plain.delete(LIST, *plain.scan_iter(match="huey*cvfloor*"))
    finally:
        plain.delete(LIST, *plain.scan_iter(match=f"{backend.keys.prefix}:*", count=1000),
                     *plain.scan_iter(match="huey*cvfloor*"))
        app.close()
    base = {name: statistics.median(rates[name]) for name in ("LPUSH (Huey-shaped)", "Huey")
            if name in rates}
    print(f"| loop | jobs/s (median of {opts.rounds}) | "
          + " | ".join(f"/ {name}" for name in base) + " |")
    print("|---|---:|" + "---:|" * len(base))
    for name, values in rates.items():
        median = statistics.median(values)
        print(f"| {name} | {median:,.0f} | "
              + " | ".join(f"{median / b:.2f}x" for b in base.values()) + " |")


if __name__ == "__main__":
    main()
