"""``conveyor`` entry point: global options and the command list."""

from __future__ import annotations

from typing import Any

import click

from ..errors import ConveyorError
from .context import CliContext, handle_errors


class ConveyorGroup(click.Group):
    """Turns every ConveyorError into one clear line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConveyorError as exc:
            handle_errors(exc)


@click.group(cls=ConveyorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--app", "app_spec", envvar="CONVEYOR_APP", metavar="MODULE:ATTR",
              help="The Conveyor app whose jobs the worker runs (or CONVEYOR_APP).")
@click.option("--connection", "-c", envvar="CONVEYOR_URL", metavar="URL",
              help="Store URL (or CONVEYOR_URL / QUEUE_CONNECTION): sqlite:///conveyor.db, "
                   "postgresql://…, redis://…, mysql://…")
@click.version_option(package_name="conveyor")
@click.pass_context
def cli(ctx: click.Context, app_spec: str | None, connection: str | None) -> None:
    """conveyor: background jobs and queue management."""
    # Client libraries log every failed reconnect attempt on their own; conveyor reports
    # store trouble itself, in one line (commands) or its own log (workers).
    import logging

    for name in ("psycopg.pool", "psycopg"):
        logging.getLogger(name).addHandler(logging.NullHandler())
        logging.getLogger(name).propagate = False
    if not isinstance(ctx.obj, CliContext):  # embedders and tests may pass a ready one
        ctx.obj = CliContext(app_spec=app_spec, connection=connection)


def _register() -> None:
    from . import batches, control, failed, monitor, work

    for module in (work, failed, control, monitor, batches):
        for command in module.COMMANDS:
            cli.add_command(command)
    import importlib

    # commands whose modules ship with optional parts of conveyor
    for name in ("demo", "bench", "batches", "health", "metrics", "supervisor"):
        try:
            module = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="conveyor")
