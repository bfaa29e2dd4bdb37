"""``conveyor monitor``: the queue overview, failed jobs and workers."""

from __future__ import annotations

import click

from ..routing import DEFAULT_WORKER_QUEUES
from .context import CliContext, pass_ctx
from .output import ago, console, echo_json, table, when


def overview_rows(ctx: CliContext) -> list[dict[str, object]]:
    app = ctx.app
    now = app.clock()
    stats = {s.queue: s for s in app.backend.queue_stats(now)}
    workers = app.live_workers()
    rows = []
    for queue in sorted(stats, key=lambda q: (
            DEFAULT_WORKER_QUEUES.index(q) if q in DEFAULT_WORKER_QUEUES else 99, q)):
        s = stats[queue]
        data = s.to_dict(now)
        data["workers"] = sum(1 for w in workers if queue in w.queues)
        rows.append(data)
    return rows


@click.command()
@click.option("--failed", "show_failed", is_flag=True, help="List failed jobs.")
@click.option("--workers", "show_workers", is_flag=True, help="List live workers.")
@click.option("--retry", "retry_ids", metavar="ID[,ID…]", help="Retry these failed jobs.")
@click.option("--clear-failed", is_flag=True, help="Delete every failed job.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def monitor(ctx: CliContext, show_failed: bool, show_workers: bool, retry_ids: str | None,
            clear_failed: bool, as_json: bool) -> None:
    """Queue overview: waiting, scheduled, running and failed jobs per queue."""
    app = ctx.app
    if retry_ids:
        ids = [i.strip() for i in retry_ids.split(",") if i.strip()]
        done = app.backend.failed_retry(ids, app.clock())
        click.echo(f"Retried {len(done)} job(s).")
        return
    if clear_failed:
        click.echo(f"Deleted {app.backend.failed_flush(None)} failed job(s).")
        return
    if show_failed:
        records = app.backend.failed_list(limit=100)
        if as_json:
            echo_json([r.to_dict() | {"summary": r.summary} for r in records])
        else:
            console().print(table("Failed jobs", ["id", "queue", "job", "failed at", "exception"],
                                  [(r.id, r.queue, r.name, when(r.failed_at), r.summary[:100])
                                   for r in records]))
        return
    if show_workers:
        workers = app.live_workers()
        if as_json:
            echo_json([w.to_dict() for w in workers])
        else:
            console().print(table(
                "Workers", ["name", "pid", "state", "queues", "concurrency", "processed",
                            "failed", "memory MB", "last heartbeat"],
                [(w.name, w.pid, w.state, ",".join(w.queues), w.concurrency,
                  w.info.get("processed"), w.info.get("failed"), w.info.get("memory_mb"),
                  ago(app.clock() - w.last_heartbeat)) for w in workers]))
        return
    rows = overview_rows(ctx)
    if as_json:
        echo_json({"store": app.display_url, "queues": rows})
        return
    console().print(table(
        f"Queues on {app.display_url}",
        ["queue", "waiting", "scheduled", "running", "failed", "oldest waiting", "workers",
         "paused"],
        [(r["queue"], r["available"], r["scheduled"], r["running"], r["failed"],
          ago(r["oldest_age"]), r["workers"], "yes" if r["paused"] else "")  # type: ignore[arg-type]
         for r in rows]))


COMMANDS = [monitor]
