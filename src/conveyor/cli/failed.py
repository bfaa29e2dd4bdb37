"""``conveyor failed``, ``retry``, ``forget``, ``flush``."""

from __future__ import annotations

import click

from ..routing import validate_queue
from .context import CliContext, fail, pass_ctx
from .output import console, echo_json, table, when


@click.command()
@click.option("--queue", help="Only this queue.")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def failed(ctx: CliContext, queue: str | None, limit: int, as_json: bool) -> None:
    """List failed jobs, newest first."""
    if queue:
        validate_queue(queue)
    records = ctx.app.backend.failed_list(queue=queue, limit=limit)
    if as_json:
        echo_json([r.to_dict() | {"summary": r.summary} for r in records])
        return
    if not records:
        click.echo("No failed jobs.")
        return
    console().print(table(
        "Failed jobs", ["id", "queue", "job", "attempts", "failed at", "exception"],
        [(r.id, r.queue, r.name, r.attempts, when(r.failed_at), r.summary[:120])
         for r in records]))


@click.command()
@click.argument("ids", nargs=-1, required=True)
@click.option("--queue", help="With 'all': only failed jobs of this queue.")
@pass_ctx
def retry(ctx: CliContext, ids: tuple[str, ...], queue: str | None) -> None:
    """Put failed jobs back: `retry all` or `retry ID [ID…]`."""
    app = ctx.app
    if queue:
        validate_queue(queue)
    if list(ids) == ["all"]:
        done = app.backend.failed_retry(None, app.clock(), queue=queue)
    else:
        if "all" in ids:
            fail("give either 'all' or job ids, not both")
        done = app.backend.failed_retry(list(ids), app.clock(), queue=queue)
        missing = [i for i in ids if i not in set(done)]
        for job_id in missing:
            click.echo(f"No failed job with id {job_id}.", err=True)
        if missing and not done:
            raise SystemExit(1)
    click.echo(f"Retried {len(done)} job(s).")


@click.command()
@click.argument("job_id")
@pass_ctx
def forget(ctx: CliContext, job_id: str) -> None:
    """Delete one failed job."""
    if not ctx.app.backend.failed_forget(job_id):
        fail(f"no failed job with id {job_id}", 1)
    click.echo(f"Forgot failed job {job_id}.")


@click.command()
@click.option("--hours", type=click.FloatRange(0), help="Only those failed more than N hours ago.")
@pass_ctx
def flush(ctx: CliContext, hours: float | None) -> None:
    """Delete failed jobs (all, or older than --hours)."""
    app = ctx.app
    older = None if hours is None else app.clock() - hours * 3600
    count = app.backend.failed_flush(older)
    click.echo(f"Deleted {count} failed job(s).")


COMMANDS = [failed, retry, forget, flush]
