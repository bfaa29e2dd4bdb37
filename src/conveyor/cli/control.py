"""``conveyor clear``, ``restart``, ``pause``, ``resume``, ``migrate``."""

from __future__ import annotations

import click

from ..routing import validate_queue
from .context import CliContext, pass_ctx


@click.command()
@click.argument("queues", nargs=-1)
@click.option("--force", is_flag=True, help="Do not ask.")
@pass_ctx
def clear(ctx: CliContext, queues: tuple[str, ...], force: bool) -> None:
    """Delete the waiting jobs of QUEUES (default: the 'default' queue)."""
    names = [validate_queue(q) for q in queues] or ["default"]
    if not force and not click.confirm(
            f"Delete every waiting job of {', '.join(names)}?", default=False):
        raise SystemExit(1)
    count = ctx.app.backend.queue_clear(names)
    click.echo(f"Cleared {count} job(s) from {', '.join(names)}.")


@click.command()
@pass_ctx
def restart(ctx: CliContext) -> None:
    """Ask every worker to finish its current jobs and exit."""
    ctx.app.restart_workers()
    click.echo("Restart signal sent: workers exit after their current jobs.")


@click.command()
@click.argument("queue")
@pass_ctx
def pause(ctx: CliContext, queue: str) -> None:
    """Stop workers taking jobs from QUEUE."""
    ctx.app.backend.queue_pause(validate_queue(queue))
    click.echo(f"Paused {queue}.")


@click.command()
@click.argument("queue")
@pass_ctx
def resume(ctx: CliContext, queue: str) -> None:
    """Let workers take jobs from QUEUE again."""
    ctx.app.backend.queue_resume(validate_queue(queue))
    click.echo(f"Resumed {queue}.")


@click.command()
@pass_ctx
def migrate(ctx: CliContext) -> None:
    """Create or upgrade the store's tables."""
    applied = ctx.app.backend.migrate()
    if applied:
        for name in applied:
            click.echo(f"Applied {name}")
    else:
        click.echo(f"{ctx.app.display_url}: schema is up to date.")


COMMANDS = [clear, restart, pause, resume, migrate]
