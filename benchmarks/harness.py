"""conveyor and its peers, side by side, on the same local servers.

    benchmarks/run.sh [--stores sqlite,redis,postgres,mysql] [--runs 3] [--jobs 10000]
                      [--variant noop|sleep|payload] [--only conveyor,huey]

Every system runs the same job, ``record(dispatched_at, pad, sleep_ms)``: it optionally
sleeps, then appends (dispatched_at, now) to a record file with one O_APPEND write
(``conveyor.benchmarking.recorder``). Completion is detected the same way for every system:
the harness polls the record file's size until it holds one record per job. Drain rate is
(jobs - 1) / (last job's run time - first job's run time), so worker start-up is not
counted; pickup latency is run time - dispatch time of jobs dispatched one at a time at a
steady rate to an idle worker. Each system's measurements run in a fresh process; runs are
interleaved (run 1 of every system, then run 2, ...) so that the machine's noise spreads
evenly, and the report gives medians.
"""

# ruff: noqa: RUF001 - the report uses typographic multiplication and minus signs
from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH_DIR))

from peers.common import WORK_DIR, vacuum_if_autovacuum_off  # noqa: E402

SYSTEMS: dict[str, list[str]] = {
    "sqlite": ["conveyor", "huey"],
    "redis": ["conveyor", "celery", "rq", "dramatiq", "huey", "arq", "saq"],
    "postgres": ["conveyor", "procrastinate", "saq", "huey"],
    "mysql": ["conveyor"],
}
VARIANTS = {"noop": {}, "sleep": {"sleep_ms": 1.0}, "payload": {"pad": "x" * 2048}}
FIGURES = ["dispatch", "bulk", "drain_1x1", "drain_1x8", "drain_2x8", "p50", "p95", "p99",
           "rss_mb"]


# -- one system, one run (in its own process) ------------------------------------------------
def make_driver(system: str, store: str) -> Any:
    os.environ["BENCH_HUEY_STORE"] = store
    os.environ["BENCH_SAQ_STORE"] = store
    if system == "conveyor":
        from peers.conveyor_peer import ConveyorDriver
        return ConveyorDriver(store)
    if system == "huey":
        from peers.huey_peer import HueyDriver
        return HueyDriver(store)
    if system == "saq":
        from peers.saq_peer import SaqDriver
        return SaqDriver(store)
    classes = {"celery": "CeleryDriver", "rq": "RQDriver", "dramatiq": "DramatiqDriver",
               "arq": "ArqDriver", "procrastinate": "ProcrastinateDriver"}
    module = __import__(f"peers.{system}_peer", fromlist=[classes[system]])
    return getattr(module, classes[system])()


class Workers:
    """Worker processes (each in its own session, so a forking worker is stopped whole),
    with the peak resident memory of each process tree sampled every 20 ms."""

    def __init__(self, driver: Any, count: int, concurrency: int, record: Path) -> None:
        import psutil

        env = dict(os.environ)
        env.update(driver.worker_env(concurrency))
        env["PYTHONPATH"] = str(BENCH_DIR)
        env["CONVEYOR_BENCH_RECORD"] = str(record)
        self.logs = [WORK_DIR / f"{driver.name}-{driver.store}-{i}.log" for i in range(count)]
        self.procs = []
        for log in self.logs:
            with open(log, "wb") as out:
                self.procs.append(subprocess.Popen(
                    driver.worker_argv(concurrency), cwd=BENCH_DIR, env=env,
                    stdin=subprocess.DEVNULL, stdout=out, stderr=out, start_new_session=True))
        self.peak_mb = 0.0
        self._psutil = psutil
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        psutil = self._psutil
        while not self._stop.wait(0.1):
            for proc in self.procs:
                try:
                    parent = psutil.Process(proc.pid)
                    tree = [parent, *parent.children(recursive=True)]
                    total = sum(p.memory_info().rss for p in tree)
                except psutil.Error:
                    continue
                self.peak_mb = max(self.peak_mb, total / 2**20)

    def alive(self) -> bool:
        return any(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()

    def tail(self) -> str:
        return " | ".join(log.read_text(errors="replace").strip()[-300:] for log in self.logs)


def measure(system: str, store: str, jobs: int, latency_jobs: int, rate: float,
            variant: str, drain_cap: float) -> dict[str, Any]:
    from conveyor.benchmarking.measure import percentile
    from conveyor.benchmarking.recorder import Records, wait_for_records

    WORK_DIR.mkdir(parents=True, exist_ok=True)
    driver = make_driver(system, store)
    record = WORK_DIR / f"{system}-{store}.rec"
    extra = VARIANTS[variant]
    out: dict[str, Any] = {"system": system, "store": store, "errors": []}
    rss: list[float] = []

    def kwargs(t: float = 0.0) -> dict[str, Any]:
        return {"dispatched_at": t, **extra}

    def drain(processes: int, concurrency: int) -> float | None:
        """Rate from the jobs' own timestamps; a slow system is stopped after --drain-cap
        seconds and its rate taken from the jobs that ran by then (steady state anyway)."""
        record.write_bytes(b"")
        workers = Workers(driver, processes, concurrency, record)
        try:
            ok = wait_for_records(record, jobs, time.monotonic() + drain_cap,
                                  alive=workers.alive)
        finally:
            workers.stop()
        rss.append(workers.peak_mb)
        done = Records.read(record)
        if not ok:
            note = f"drain {processes}x{concurrency}: {len(done)} of {jobs} jobs ran"
            if len(done) < min(jobs, 100):
                out["errors"].append(f"{note}; log: {workers.tail()}")
                return None
            out["errors"].append(f"{note} within the {drain_cap:g} s cap (rate from those)")
        return float(done.drain_rate())

    def fill() -> None:
        for _ in range(jobs):
            driver.dispatch(kwargs())

    def fresh() -> None:
        """A clean queue for the next phase (vacuumed first where autovacuum is off)."""
        vacuum_if_autovacuum_off(store)
        driver.setup()

    fresh()
    try:
        started = time.perf_counter()
        for _ in range(jobs):
            driver.dispatch(kwargs())
        out["dispatch"] = jobs / (time.perf_counter() - started)
        out["drain_1x1"] = drain(1, 1)
        fresh()
        if driver.bulk_api:
            many = [kwargs() for _ in range(jobs)]
            started = time.perf_counter()
            driver.dispatch_bulk(many)
            out["bulk"] = jobs / (time.perf_counter() - started)
        else:
            out["bulk"] = None
            fill()
        if driver.concurrent:
            out["drain_1x8"] = drain(1, 8)
        else:
            out["drain_1x8"] = None
        fresh()
        if driver.bulk_api:
            driver.dispatch_bulk([kwargs() for _ in range(jobs)])
        else:
            fill()
        out["drain_2x8"] = drain(2, 8 if driver.concurrent else 1)
        fresh()
        # pickup latency: an idle worker, one job at a time at a steady rate
        record.write_bytes(b"")
        workers = Workers(driver, 1, 1, record)
        try:
            for _ in range(3):
                driver.dispatch(kwargs(time.time()))
            if not wait_for_records(record, 3, time.monotonic() + 60, alive=workers.alive):
                raise RuntimeError(f"latency worker did not start: {workers.tail()}")
            time.sleep(0.5)  # let it go idle
            record.write_bytes(b"")
            interval = 1.0 / rate
            start = time.perf_counter()
            for i in range(latency_jobs):
                pause = start + i * interval - time.perf_counter()
                if pause > 0:
                    time.sleep(pause)
                driver.dispatch(kwargs(time.time()))
            ok = wait_for_records(record, latency_jobs, time.monotonic() + 60,
                                  alive=workers.alive)
        finally:
            workers.stop()
        rss.append(workers.peak_mb)
        if ok:
            lat = Records.read(record).latencies()
            for name, q in (("p50", 0.5), ("p95", 0.95), ("p99", 0.99)):
                out[name] = percentile(lat, q) * 1000
        else:
            out["errors"].append("latency: jobs missing")
        out["rss_mb"] = max(rss) if rss else None
    except Exception as exc:  # a peer failing must not sink the whole run
        out["errors"].append(f"{type(exc).__name__}: {exc}")
    finally:
        try:
            driver.setup()  # leave nothing behind
            driver.teardown()
        except Exception as exc:
            out["errors"].append(f"cleanup: {exc}")
    return out


# -- the whole run -----------------------------------------------------------------------
def versions(systems: set[str]) -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in sorted(systems | {"redis", "psycopg", "pymysql", "orjson"}):
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "-"
    return found


def machine() -> dict[str, str]:
    import platform

    info = {"python": platform.python_version(), "os": platform.platform(),
            "cores": str(os.cpu_count())}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
        info["memory"] = Path("/proc/meminfo").read_text().splitlines()[0].split(":")[1].strip()
    except OSError:
        pass
    return info


def servers(stores: list[str]) -> dict[str, str]:
    from peers.common import MYSQL_URL, PG_URL, REDIS_URL

    found = {}
    try:
        if "redis" in stores:
            import redis
            found["redis"] = redis.Redis.from_url(REDIS_URL).info("server")["redis_version"]
        if "postgres" in stores:
            import psycopg
            with psycopg.connect(PG_URL) as conn:
                row = conn.execute("SHOW server_version").fetchone()
                found["postgres"] = str(row[0]) if row else "?"
        if "mysql" in stores:
            from urllib.parse import urlparse

            import pymysql
            u = urlparse(MYSQL_URL)
            conn = pymysql.connect(host=u.hostname, port=u.port or 3306, user=u.username,
                                   password=u.password or "", database=u.path.lstrip("/"))
            with conn.cursor() as cur:
                cur.execute("SELECT VERSION()")
                found["mysql"] = str(cur.fetchone()[0])
            conn.close()
        if "sqlite" in stores:
            import sqlite3
            found["sqlite"] = sqlite3.sqlite_version
    except Exception as exc:  # reported, not fatal
        found["error"] = str(exc)
    return found


def median(values: list[Any]) -> float | None:
    numbers = [v for v in values if isinstance(v, int | float)]
    return statistics.median(numbers) if numbers else None


def fmt(value: float | None, figure: str) -> str:
    if value is None:
        return "—"
    if figure in ("p50", "p95", "p99"):
        return f"{value:.1f}" if value < 100 else f"{value:,.0f}"
    if figure == "rss_mb":
        return f"{value:.0f}"
    return f"{value:,.0f}"


HEADERS = {"dispatch": "dispatch/s", "bulk": "bulk/s", "drain_1x1": "drain 1×1",
           "drain_1x8": "drain 1×8", "drain_2x8": "drain 2 proc", "p50": "p50 ms",
           "p95": "p95 ms", "p99": "p99 ms", "rss_mb": "RSS MB"}
LOWER_IS_BETTER = {"p50", "p95", "p99", "rss_mb"}


def table(store: str, rows: dict[str, dict[str, float | None]]) -> list[str]:
    lines = ["| system | " + " | ".join(HEADERS[f] for f in FIGURES) + " |",
             "|---|" + "---:|" * len(FIGURES)]
    for system, figures in rows.items():
        lines.append(f"| {system} | " + " | ".join(fmt(figures.get(f), f) for f in FIGURES)
                     + " |")
    peers = {s: f for s, f in rows.items() if s != "conveyor"}
    if "conveyor" in rows and peers:
        cells = []
        for f in FIGURES:
            mine = rows["conveyor"].get(f)
            theirs = [p.get(f) for p in peers.values() if p.get(f) is not None]
            if mine is None or not theirs:
                cells.append("—")
                continue
            best = min(theirs) if f in LOWER_IS_BETTER else max(theirs)  # type: ignore[type-var]
            ratio = (best / mine) if f in LOWER_IS_BETTER else (mine / best)  # type: ignore[operator]
            cells.append(f"{ratio:.2f}×")
        lines.append("| **conveyor ÷ best peer** | " + " | ".join(cells) + " |")
    return lines


def report(results: list[dict[str, Any]], args: argparse.Namespace, started: str,
           command: str) -> str:
    systems = {r["system"] for r in results}
    lines = [f"# Benchmark {started} — variant `{args.variant}`", "",
             f"Command: `{command}`", "",
             f"{args.jobs:,} jobs per dispatch/drain figure; pickup latency from "
             f"{args.latency_jobs:,} jobs at a steady {args.rate:g} jobs/s to an idle worker "
             f"(concurrency 1); medians of {args.runs} run(s). Drain = (jobs − 1) / (last run − "
             "first run) from timestamps the jobs write; completion detected the same way for "
             "every system (the harness polls a record file each job appends 16 bytes to). "
             "Ratios: conveyor ÷ best peer for rates, best peer ÷ conveyor for latency and "
             "memory (so > 1 always means conveyor is better).", ""]
    m = machine()
    lines.append("Machine: " + ", ".join(f"{k} {v}" for k, v in m.items()))
    lines.append("Servers: " + ", ".join(f"{k} {v}" for k, v in servers(args.stores).items()))
    lines.append("Packages: " + ", ".join(f"{k} {v}" for k, v in versions(systems).items()))
    lines.append("")
    for store in args.stores:
        rows: dict[str, dict[str, float | None]] = {}
        for system in SYSTEMS[store]:
            mine = [r for r in results if r["system"] == system and r["store"] == store]
            if mine:
                rows[system] = {f: median([r.get(f) for r in mine]) for f in FIGURES}
        if not rows:
            continue
        lines += [f"## {store}", "", *table(store, rows), ""]
        errors = [f"- {r['system']} (run {r['run']}): {e}" for r in results
                  if r["store"] == store for e in r["errors"]]
        if errors:
            lines += ["Errors:", "", *errors, ""]
    lines += ["## How each system was run", ""]
    notes = {
        "conveyor": "`conveyor work --concurrency N` (threads); bulk = one `dispatch_many` call",
        "celery": "`celery worker --pool solo` (N=1) or `--pool threads -c N`; no bulk API",
        "rq": "`rq worker --worker-class rq.worker.SimpleWorker`; no in-process concurrency "
              "(drain 2 proc = 2 workers); bulk = `Queue.enqueue_many`",
        "dramatiq": "`dramatiq --processes 1 --threads N`; no bulk API",
        "huey": "`huey_consumer -k thread -w N` with RedisHuey / SqliteHuey / PostgresHuey "
                "defaults; no bulk API",
        "arq": "`arq WorkerSettings` max_jobs=N, keep_result=0, poll_delay=0.01 (the default "
               "0.5 s would cap max_jobs=1 at 2 jobs/s); "
               "bulk = asyncio.gather of enqueue_job (500 at a time)",
        "saq": "`saq settings --workers 1` concurrency=N; bulk = asyncio.gather of enqueue",
        "procrastinate": "`procrastinate worker --concurrency N`; bulk = `batch_defer`",
    }
    lines += [f"- **{s}**: {notes[s]}" for s in sorted(systems) if s in notes]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stores", default="sqlite,redis,postgres,mysql")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=10_000)
    parser.add_argument("--latency-jobs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="noop")
    parser.add_argument("--drain-cap", type=float, default=60.0,
                        help="seconds a drain may take; slower systems are rated on the jobs "
                             "that ran by then")
    parser.add_argument("--only", default="", help="comma-separated systems")
    parser.add_argument("--measure", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.stores = [s for s in args.stores.split(",") if s]
    if args.measure:  # child mode: one system, one run, JSON on stdout
        # stopped by a signal, it stops its workers first: they run in sessions of their
        # own and, left running, would take the jobs of the next measurements
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        system, store = args.measure.split(":")
        result = measure(system, store, args.jobs, args.latency_jobs, args.rate, args.variant,
                         args.drain_cap)
        print(json.dumps(result))
        return
    only = set(filter(None, args.only.split(",")))
    started = time.strftime("%Y-%m-%dT%H%M%SZ", time.gmtime())
    command = "benchmarks/run.sh " + " ".join(sys.argv[1:])
    results: list[dict[str, Any]] = []
    for run in range(1, args.runs + 1):
        for store in args.stores:
            for system in SYSTEMS[store]:
                if only and system not in only:
                    continue
                print(f"[run {run}/{args.runs}] {system} on {store} ...", file=sys.stderr,
                      flush=True)
                child = subprocess.run(
                    [sys.executable, __file__, "--measure", f"{system}:{store}",
                     "--jobs", str(args.jobs), "--latency-jobs", str(args.latency_jobs),
                     "--rate", str(args.rate), "--variant", args.variant,
                     "--drain-cap", str(args.drain_cap)],
                    capture_output=True, text=True, timeout=1800)
                try:
                    result = json.loads(child.stdout.strip().splitlines()[-1])
                except (IndexError, json.JSONDecodeError):
                    result = {"system": system, "store": store,
                              "errors": [f"crashed: {child.stderr.strip()[-500:]}"]}
                result["run"] = run
                print("   " + json.dumps({k: (round(v, 1) if isinstance(v, float) else v)
                                          for k, v in result.items()}), file=sys.stderr,
                      flush=True)
                results.append(result)
    out_dir = BENCH_DIR / "results"
    out_dir.mkdir(exist_ok=True)
    text = report(results, args, started, command)
    name = f"{started}-{args.variant}-{'-'.join(args.stores)}"
    (out_dir / f"{name}.md").write_text(text)
    (out_dir / f"{name}.json").write_text(json.dumps(results, indent=1))
    print(text)
    print(f"written: benchmarks/results/{name}.md", file=sys.stderr)


if __name__ == "__main__":
    main()
