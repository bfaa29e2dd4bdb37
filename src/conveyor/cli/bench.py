"""``conveyor bench``: dispatch, drain and pickup-latency figures for the configured store."""

from __future__ import annotations

import json
import platform

import click

from ..benchmarking import BenchConfig, BenchResult, run_bench
from ..routing import validate_queue
from .context import CliContext, pass_ctx


def _table(result: BenchResult) -> str:
    lines = [f"conveyor bench on {result.store} ({result.jobs} jobs per figure, "
             f"Python {platform.python_version()}, {platform.machine()})", ""]
    lines.append(f"  dispatch, one by one      {result.dispatch_rate:>10,.0f} jobs/s")
    lines.append(f"  dispatch_many, one call   {result.dispatch_many_rate:>10,.0f} jobs/s")
    for d in result.drains:
        label = f"drain, {d.processes} proc x {d.concurrency}"
        lines.append(f"  {label:<25} {d.rate:>10,.0f} jobs/s   peak RSS {d.peak_rss_mb:.0f} MB")
    if result.latency_ms:
        lat = result.latency_ms
        lines.append(f"  pickup latency (idle)     p50 {lat['p50']:.1f} ms  p95 {lat['p95']:.1f} ms"
                     f"  p99 {lat['p99']:.1f} ms  max {lat['max']:.1f} ms")
    for error in result.errors:
        lines.append(f"  error: {error}")
    return "\n".join(lines)


def _drains(_ctx: object, _param: object, value: str) -> tuple[tuple[int, int], ...]:
    """``1x1,1x8,2x8`` -> ((1, 1), (1, 8), (2, 8))."""
    drains: list[tuple[int, int]] = []
    for part in filter(None, (p.strip() for p in value.split(","))):
        processes, x, concurrency = part.lower().partition("x")
        if not (x and processes.isdigit() and concurrency.isdigit()
                and 1 <= int(processes) <= 64 and 1 <= int(concurrency) <= 1024):
            raise click.BadParameter(
                f"{part!r} is not PROCESSESxTHREADS (for example 2x8; 1-64 processes, "
                "1-1024 threads)")
        drains.append((int(processes), int(concurrency)))
    if not drains:
        raise click.BadParameter("give at least one drain, for example 1x8")
    return tuple(drains)


@click.command()
@click.option("--jobs", "-n", type=click.IntRange(10), default=2000, show_default=True,
              help="Jobs per dispatch and drain figure.")
@click.option("--latency-jobs", type=click.IntRange(10), default=400, show_default=True,
              help="Jobs dispatched one at a time to an idle worker for pickup latency.")
@click.option("--rate", type=click.FloatRange(1), default=200.0, show_default=True,
              help="Jobs per second for the pickup-latency run.")
@click.option("--sleep-ms", type=click.FloatRange(0), default=0.0,
              help="Make each job sleep this long (default: no-op jobs).")
@click.option("--payload", "payload_bytes", type=click.IntRange(0), default=0,
              help="Pad each job's arguments with this many bytes.")
@click.option("--drains", default="1x1,1x8,2x8", show_default=True, callback=_drains,
              help="Drains to measure, as PROCESSESxTHREADS, comma-separated "
                   "(e.g. 1x8,2x8,4x8 for throughput with 1, 2 and 4 worker processes).")
@click.option("--queue", default="conveyor_bench", show_default=True,
              help="The queue the benchmark uses (cleared before and after).")
@click.option("--prefix", default="conveyor_bench_", show_default=True,
              help="Table / key prefix of the benchmark's own tables, apart from your jobs.")
@click.option("--json", "as_json", is_flag=True, help="Print the figures as JSON.")
@pass_ctx
def bench(ctx: CliContext, jobs: int, latency_jobs: int, rate: float, sleep_ms: float,
          payload_bytes: int, drains: tuple[tuple[int, int], ...], queue: str, prefix: str,
          as_json: bool) -> None:
    """Measure dispatch rate, drain rate, pickup latency and worker memory on the store.

    Workers are real `conveyor work` processes (by default 1 x 1, 1 x 8 and 2 x 8
    threads; see --drains). The benchmark uses its own queue and table prefix and
    removes its jobs when done.
    """
    url = ctx.connection or ctx.app.settings.url
    config = BenchConfig(url=url, jobs=jobs, latency_jobs=latency_jobs, latency_rate=rate,
                         prefix=prefix, queue=validate_queue(queue), sleep_ms=sleep_ms,
                         payload_bytes=payload_bytes, drains=drains)
    progress = None if as_json else (lambda msg: click.echo(f"... {msg}", err=True))
    result = run_bench(config, progress)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        click.echo(_table(result))
    if result.errors:
        raise SystemExit(1)


COMMANDS = [bench]
