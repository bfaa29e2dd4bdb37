"""``conveyor monitor``: queue overview, statistics, failed jobs, workers, live view."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import click
from rich.console import Group, RenderableType
from rich.live import Live
from rich.text import Text

from ..errors import NotFound, StoreError
from ..monitoring import views
from ..monitoring.stats import parse_duration
from ..routing import validate_queue
from .context import CliContext, pass_ctx
from .output import ago, console, echo_json, table, when


def _num(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else ago(value)


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return ago(seconds)


def render_overview(data: dict[str, Any]) -> RenderableType:
    rows = [(r["queue"], r["available"], r["scheduled"], r["running"], r["failed"],
             _num(r["throughput_per_min"]), _secs(r["runtime_avg"]), _secs(r["runtime_p95"]),
             _secs(r["oldest_age"]), r["workers"], "yes" if r["paused"] else "")
            for r in data["queues"]]
    window = _span(data["window"])
    return Group(
        table(f"Queues on {data['store']}",
              ["queue", "waiting", "scheduled", "running", "failed", f"jobs/min ({window})",
               "avg runtime", "p95 runtime", "oldest waiting", "workers", "paused"], rows),
        Text(f"{data['workers']} live worker(s)" if rows else "No queues have jobs yet."),
    )


def render_stats(data: dict[str, Any]) -> RenderableType:
    columns = ["processed", "failed", "released", "timed out", "jobs/min", "failure rate",
               "avg", "p50", "p95", "p99", "max", "avg wait", "max wait"]

    def cells(s: dict[str, Any]) -> list[Any]:
        rate = s["failure_rate"]
        return [s["processed"], s["failed"], s["released"], s["timed_out"],
                _num(s["throughput_per_min"], 2), "-" if rate is None else f"{rate:.1%}",
                _secs(s["runtime_avg"]), _secs(s["runtime_p50"]), _secs(s["runtime_p95"]),
                _secs(s["runtime_p99"]), _secs(s["runtime_max"]), _secs(s["wait_avg"]),
                _secs(s["wait_max"])]

    since = _span(data["since"])
    return Group(
        table(f"Queues, last {since}", ["queue", *columns],
              [[q["queue"], *cells(q)] for q in data["queues"]]
              + [["all", *cells(data["total"])]]),
        table(f"Jobs, last {since}", ["queue", "job", *columns],
              [[j["queue"], j["name"], *cells(j)] for j in data["jobs"]]),
    )


def render_workers(rows: list[dict[str, Any]]) -> RenderableType:
    def job(j: dict[str, Any]) -> str:
        progress = j.get("progress")
        done = "" if progress is None else f", {progress:.0f}%"
        return f"{j['name']} {j['id']} ({_secs(j.get('running_for'))}{done})"

    def current(w: dict[str, Any]) -> str:
        return "\n".join(job(j) for j in w["current"]) or "-"

    return table(
        "Workers", ["name", "host", "pid", "state", "queues", "busy", "current jobs",
                    "processed", "failed", "memory MB", "up", "heartbeat"],
        [(w["name"], w["host"], w["pid"], w["state"], ",".join(w["queues"]),
          f"{len(w['current'])}/{w['concurrency']}", current(w), w["processed"], w["failed"],
          w["memory_mb"], ago(max(0.0, w["last_heartbeat"] - w["started_at"])),
          f"{ago(w['heartbeat_age'])} ago") for w in rows])


def render_failed(rows: list[dict[str, Any]]) -> RenderableType:
    if not rows:
        return Text("No failed jobs.")
    return table("Failed jobs", ["id", "queue", "job", "attempts", "failed at", "exception"],
                 [(r["id"], r["queue"], r["name"], r["attempts"], when(r["failed_at"]),
                   r["summary"][:120]) for r in rows])


def _show_failed(ctx: CliContext, job_id: str, as_json: bool) -> None:
    record = ctx.app.backend.failed_get(job_id)
    if record is None:
        raise NotFound(f"no failed job with id {job_id} (list them with `conveyor monitor "
                       "--failed`)")
    detail = views.failed_detail(record)
    if as_json:
        echo_json(detail)
        return
    out = console()
    for key in ("id", "queue", "name", "connection", "attempts"):
        out.print(f"[bold]{key}:[/bold] {detail[key]}", highlight=False)
    out.print(f"[bold]failed at:[/bold] {when(detail['failed_at'])}", highlight=False)
    out.print("[bold]payload:[/bold]")
    payload = detail["payload"]
    click.echo(payload if isinstance(payload, str) else json.dumps(payload, indent=2))
    out.print("[bold]exception:[/bold]")
    click.echo(detail["exception"])


def watch(build: Callable[[], Any], render: Callable[[Any], RenderableType], as_json: bool,
          interval: float) -> None:
    """Redraw until Ctrl-C (or SIGTERM): Rich Live on a terminal, a frame after another
    when piped, one JSON document per line with --json."""

    def stop(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    out = console()

    def frame() -> RenderableType:
        try:
            return render(build())
        except StoreError as exc:
            return Text(f"store unreachable: {exc}", style="bold red")

    try:
        if as_json:
            while True:
                try:
                    click.echo(json.dumps(build(), default=str))
                except StoreError as exc:
                    click.echo(json.dumps({"error": str(exc)}))
                time.sleep(interval)
        elif out.is_terminal:
            with Live(frame(), console=out, auto_refresh=False) as live:
                while True:
                    time.sleep(interval)
                    live.update(frame(), refresh=True)
        else:
            while True:
                out.print(frame())
                time.sleep(interval)
    except KeyboardInterrupt:
        pass


@click.command()
@click.option("--stats", "show_stats", is_flag=True,
              help="Statistics per queue and per job over --since.")
@click.option("--since", default=None, metavar="DURATION",
              help="Window of --stats (default 1h) and of the overview's rates (default 5m).")
@click.option("--failed", "show_failed", is_flag=True, help="List failed jobs.")
@click.option("--show", "show_id", metavar="ID", help="With --failed: one job's payload and "
              "traceback.")
@click.option("--queue", help="With --failed: only this queue.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True,
              help="With --failed: at most this many.")
@click.option("--workers", "show_workers", is_flag=True, help="List live workers.")
@click.option("--batches", "show_batches", is_flag=True,
              help="Running batches with their progress (see `conveyor batches`).")
@click.option("--retry", "retry_ids", metavar="ID[,ID…]", help="Retry these failed jobs.")
@click.option("--clear-failed", is_flag=True, help="Delete every failed job.")
@click.option("--watch", "live", is_flag=True, help="Refresh the view until Ctrl-C.")
@click.option("--interval", type=click.FloatRange(0.1), default=2.0, show_default=True,
              help="Seconds between two refreshes of --watch.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def monitor(ctx: CliContext, show_stats: bool, since: str | None, show_failed: bool,
            show_id: str | None, queue: str | None, limit: int, show_workers: bool,
            show_batches: bool, retry_ids: str | None, clear_failed: bool, live: bool,
            interval: float, as_json: bool) -> None:
    """Queue overview: waiting, scheduled, running and failed jobs, throughput and runtimes
    per queue, and the workers serving each."""
    app = ctx.app
    if retry_ids:
        ids = [i.strip() for i in retry_ids.split(",") if i.strip()]
        done = app.backend.failed_retry(ids, app.clock())
        missing = [i for i in ids if i not in set(done)]
        if as_json:
            echo_json({"retried": done, "missing": missing})
        else:
            for job_id in missing:
                click.echo(f"No failed job with id {job_id}.", err=True)
            click.echo(f"Retried {len(done)} job(s).")
        if missing and not done:
            raise SystemExit(1)
        return
    if clear_failed:
        count = app.backend.failed_flush(None)
        if as_json:
            echo_json({"deleted": count})
        else:
            click.echo(f"Deleted {count} failed job(s).")
        return
    if show_id:
        _show_failed(ctx, show_id, as_json)
        return
    if queue:
        validate_queue(queue)
    if show_batches:
        from .batches import batch_rows, render_batch_rows, running_batches

        view = View(lambda: batch_rows(running_batches(app, limit)), render_batch_rows)
    else:
        view = _choose_view(ctx, show_stats, since, show_failed, queue, limit, show_workers)
    if live:
        watch(view.build, view.render, as_json, interval)
    elif as_json:
        echo_json(view.build())
    else:
        console().print(view.render(view.build()))


class View(NamedTuple):
    build: Callable[[], Any]
    render: Callable[[Any], RenderableType]


def _choose_view(ctx: CliContext, show_stats: bool, since: str | None, show_failed: bool,
                 queue: str | None, limit: int, show_workers: bool) -> View:
    app = ctx.app
    if show_stats:
        window = parse_duration(since or "1h", "--since")
        return View(lambda: views.statistics(app, window), render_stats)
    if show_failed:
        return View(lambda: [views.failed_row(r)
                             for r in app.backend.failed_list(queue=queue, limit=limit)],
                    render_failed)
    if show_workers:
        return View(lambda: views.workers(app), render_workers)
    window = parse_duration(since or "5m", "--since")
    return View(lambda: views.overview(app, window), render_overview)

COMMANDS = [monitor]
