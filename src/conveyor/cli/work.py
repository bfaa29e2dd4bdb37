"""``conveyor work``."""

from __future__ import annotations

import click

from ..retry import parse_backoff
from ..routing import parse_worker_queues
from ..worker.logs import configure_logging
from ..worker.options import WorkerOptions, default_worker_name
from ..worker.policy import WorkerDefaults
from ..worker.runner import Worker
from .context import CliContext, pass_ctx


@click.command()
@click.option("--queue", "-q", "queues", metavar="A,B,C",
              help="Queues in strict priority order, or weighted: a:5,b:2,c:1 "
                   "(default: the standard order of every queue type).")
@click.option("--concurrency", "-n", type=click.IntRange(1, 1024), help="Jobs run at once.")
@click.option("--sleep", type=click.FloatRange(0), help="Idle poll ceiling in seconds.")
@click.option("--tries", type=click.IntRange(1), help="Attempts for jobs that do not set tries.")
@click.option("--timeout", type=click.FloatRange(0),
              help="Seconds a job may run, for jobs that do not set one (0: none).")
@click.option("--backoff", metavar="S[,S…]", help="Retry delays: 10 or 10,60,300 or exponential.")
@click.option("--lease", type=click.FloatRange(1), help="Lease seconds, renewed at a third.")
@click.option("--memory", type=click.IntRange(0), help="Exit after a job when RSS exceeds MB.")
@click.option("--max-time", type=click.FloatRange(0), default=0, help="Exit after N seconds.")
@click.option("--max-jobs", type=click.IntRange(0), default=0, help="Exit after N jobs.")
@click.option("--stop-when-empty", is_flag=True, help="Burst mode: exit 0 when nothing is left.")
@click.option("--once", is_flag=True, help="Run a single job, then exit.")
@click.option("--name", help="Worker name (default host:pid:random).")
@click.option("--grace", type=click.FloatRange(0), default=30.0, show_default=True,
              help="On SIGTERM, seconds running jobs get to finish.")
@click.option("--json", "json_logs", is_flag=True, help="Log JSON lines.")
@click.option("--quiet", is_flag=True, help="Log only warnings and errors.")
@pass_ctx
def work(ctx: CliContext, queues: str | None, concurrency: int | None, sleep: float | None,
         tries: int | None, timeout: float | None, backoff: str | None, lease: float | None,
         memory: int | None, max_time: float, max_jobs: int, stop_when_empty: bool, once: bool,
         name: str | None, grace: float, json_logs: bool, quiet: bool) -> None:
    """Run a worker."""
    import logging

    ctx.require_app_spec()
    app = ctx.app
    s = app.settings
    configure_logging("json" if json_logs else s.log_format,
                      logging.WARNING if quiet else logging.INFO)
    names, weights = parse_worker_queues(queues)
    defaults = WorkerDefaults(
        tries=tries or s.worker_tries,
        backoff=parse_backoff(backoff if backoff is not None else s.worker_backoff),
        timeout=s.worker_timeout if timeout is None else timeout,
        lease=lease or s.worker_lease,
    )
    options = WorkerOptions(
        queues=names, weights=weights, concurrency=concurrency or s.worker_concurrency,
        defaults=defaults, sleep=s.worker_sleep if sleep is None else sleep,
        memory_mb=s.worker_memory if memory is None else memory, max_time=max_time,
        max_jobs=max_jobs, stop_when_empty=stop_when_empty, once=once,
        name=name or default_worker_name(), grace=grace,
    )
    raise SystemExit(Worker(app, options).run())


COMMANDS = [work]
