"""``conveyor supervisor-config``: a supervisord program block and a systemd unit."""

from __future__ import annotations

import getpass
import os
import sys

import click

from ..monitoring.deploy import WorkerDeployment, supervisord, systemd
from ..routing import DEFAULT_WORKER_QUEUES, parse_worker_queues
from .context import CliContext, pass_ctx


@click.command("supervisor-config")
@click.option("--program", default="conveyor-worker", show_default=True)
@click.option("--numprocs", type=click.IntRange(1), default=4, show_default=True)
@click.option("--queue", "-q", "queues", metavar="A,B,C", help="Worker queues (default: all, "
              "in the standard order).")
@click.option("--user", default=None, help="User the workers run as (default: you).")
@click.option("--directory", type=click.Path(file_okay=False), default=None,
              help="Working directory (default: here); its .env is read.")
@click.option("--log-file", default=None, help="supervisord log (default "
              "/var/log/conveyor/PROGRAM.log).")
@click.option("--sleep", type=click.FloatRange(0), default=3.0, show_default=True)
@click.option("--tries", type=click.IntRange(1), default=3, show_default=True)
@click.option("--max-time", type=click.FloatRange(0), default=3600, show_default=True)
@click.option("--timeout", type=click.FloatRange(0), help="Worker --timeout (default: the "
              "setting).")
@click.option("--format", "fmt", type=click.Choice(["supervisord", "systemd", "both"]),
              default="both", show_default=True)
@pass_ctx
def supervisor_config(ctx: CliContext, program: str, numprocs: int, queues: str | None,
                      user: str | None, directory: str | None, log_file: str | None,
                      sleep: float, tries: int, max_time: float, timeout: float | None,
                      fmt: str) -> None:
    """Print a supervisord program block and a systemd unit that run workers."""
    ctx.require_app_spec()
    app = ctx.app
    spec = ctx.app_spec or app.settings.app or ""
    names, weights = parse_worker_queues(queues)
    queue_arg = ",".join(f"{q}:{weights[q]}" if weights else q for q in names)
    worker_timeout = app.settings.worker_timeout if timeout is None else timeout
    longest = max([worker_timeout, *(j.timeout or 0.0 for j in app.registry.values())])
    command = [sys.executable, "-m", "conveyor", "--app", spec, "work"]
    if names != list(DEFAULT_WORKER_QUEUES) or weights:
        command += ["--queue", queue_arg]
    command += ["--sleep", f"{sleep:g}", "--tries", str(tries), "--max-time", f"{max_time:g}"]
    if timeout is not None:
        command += ["--timeout", f"{timeout:g}"]
    deployment = WorkerDeployment(
        program=program, command=command, directory=os.path.abspath(directory or os.getcwd()),
        user=user or getpass.getuser(), numprocs=numprocs, longest_timeout=longest,
        log_file=log_file or f"/var/log/conveyor/{program}.log")
    parts = []
    if fmt in ("supervisord", "both"):
        parts.append("; supervisord: /etc/supervisor/conf.d/" + program + ".conf\n"
                     + supervisord(deployment))
    if fmt in ("systemd", "both"):
        parts.append(systemd(deployment))
    click.echo("\n".join(parts), nl=False)


COMMANDS = [supervisor_config]
