"""``conveyor batches`` (list with progress), ``batches show|retry|cancel|prune``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from ..batches import Batch
from ..records import BatchRecord
from .context import CliContext, fail, pass_ctx
from .output import console, echo_json, table, when

if TYPE_CHECKING:
    from ..app import Conveyor


def _state(record: BatchRecord) -> str:
    if record.succeeded:
        return "succeeded"
    if record.cancelled:
        return "cancelled, finished" if record.finished else "cancelled"
    if record.finished:
        return "finished with failures"
    return "running"


def _bar(progress: int, width: int = 20) -> str:
    filled = progress * width // 100
    return "#" * filled + "." * (width - filled) + f" {progress:3d}%"


def _find(ctx: CliContext, batch_id: str) -> Batch:
    batch = ctx.app.find_batch(batch_id)
    if batch is None:
        fail(f"no batch with id {batch_id} (see `conveyor batches`)", 1)
    assert batch is not None
    return batch


def running_batches(app: Conveyor, limit: int = 50) -> list[BatchRecord]:
    """Batches not finished yet, newest first (``monitor --batches`` shows them too)."""
    if not app.backend.capabilities.batches:
        return []
    return [r for r in app.backend.batch_list(limit=limit) if not r.finished]


def batch_rows(records: list[BatchRecord]) -> list[dict[str, Any]]:
    return [r.to_dict() | {"state": _state(r)} for r in records]


def render_batch_rows(rows: list[dict[str, Any]], title: str = "Running batches") -> Table:
    return table(
        title, ["id", "name", "progress", "total", "pending", "failed", "state", "created"],
        [(r["id"], r["name"], _bar(r["progress"]), r["total_jobs"], r["pending_jobs"],
          r["failed_jobs"], r["state"], when(r["created_at"])) for r in rows])


@click.group(invoke_without_command=True)
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@click.option("--running", is_flag=True, help="Only batches not finished yet.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def batches(click_ctx: click.Context, limit: int, running: bool, as_json: bool) -> None:
    """List batches, newest first, with their progress."""
    if click_ctx.invoked_subcommand is not None:
        return
    ctx = click_ctx.ensure_object(CliContext)
    app = ctx.app
    records = running_batches(app, limit) if running else app.backend.batch_list(limit=limit)
    if as_json:
        echo_json(batch_rows(records))
        return
    if not records:
        click.echo("No running batches." if running else "No batches.")
        return
    console().print(render_batch_rows(batch_rows(records),
                                      "Running batches" if running else "Batches"))


@batches.command()
@click.argument("batch_id")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_ctx
def show(ctx: CliContext, batch_id: str, as_json: bool) -> None:
    """One batch: counters, state, callbacks and failed job ids."""
    batch = _find(ctx, batch_id)
    r = batch.record
    callbacks = {kind: [link["name"] for link in links]
                 for kind, links in batch.options.callbacks.items()}
    if as_json:
        echo_json(r.to_dict() | {"state": _state(r), "callbacks": callbacks,
                                 "allow_failures": batch.options.allow_failures})
        return
    lines = [
        f"Batch {r.id} {r.name!r}: {_state(r)}",
        f"  progress   {_bar(r.progress)}",
        f"  jobs       total {r.total_jobs}, pending {r.pending_jobs}, failed {r.failed_jobs}",
        f"  created    {when(r.created_at)}",
        f"  finished   {when(r.finished_at) if r.finished_at else '-'}",
        f"  cancelled  {when(r.cancelled_at) if r.cancelled_at else '-'}",
        f"  failures   {'allowed' if batch.options.allow_failures else 'cancel the batch'}",
    ]
    for kind, names in callbacks.items():
        lines.append(f"  {kind:<10} {', '.join(names)}")
    if r.failed_job_ids:
        lines.append("  failed job ids (conveyor batches retry " + r.id + "):")
        lines.extend(f"    {job_id}" for job_id in r.failed_job_ids)
    click.echo("\n".join(lines))


@batches.command()
@click.argument("batch_id")
@pass_ctx
def retry(ctx: CliContext, batch_id: str) -> None:
    """Put exactly the batch's failed jobs back on their queues."""
    batch = _find(ctx, batch_id)
    done = batch.retry_failed()
    missing = set(batch.failed_job_ids) - set(done)
    if missing:
        click.echo(f"{len(missing)} failed job(s) of the batch are no longer in the failed "
                   "store (forgotten or flushed).", err=True)
    click.echo(f"Retried {len(done)} job(s) of batch {batch_id}.")


@batches.command()
@click.argument("batch_id")
@pass_ctx
def cancel(ctx: CliContext, batch_id: str) -> None:
    """Cancel a batch: its jobs that have not started are skipped."""
    batch = _find(ctx, batch_id)
    batch.cancel()
    click.echo(f"Cancelled batch {batch_id}: {batch.pending_jobs} job(s) not done yet are "
               "skipped when a worker reaches them.")


@batches.command()
@click.option("--hours", type=click.FloatRange(0), default=24.0, show_default=True,
              help="Delete batches finished more than N hours ago.")
@pass_ctx
def prune(ctx: CliContext, hours: float) -> None:
    """Delete finished batches older than --hours (and old callback/link keys)."""
    app = ctx.app
    count = app.backend.batch_prune(app.clock() - hours * 3600)
    click.echo(f"Pruned {count} batch(es).")


COMMANDS = [batches]
