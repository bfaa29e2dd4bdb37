"""``conveyor health``, ``conveyor metrics`` and ``conveyor supervisor-config``."""

from __future__ import annotations

import getpass
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

import click

from ..monitoring.deploy import WorkerDeployment, supervisord, systemd
from ..monitoring.health import EXIT_STORE_DOWN, EXIT_UNHEALTHY, Thresholds, check
from ..monitoring.stats import parse_duration, parse_rate
from ..routing import DEFAULT_WORKER_QUEUES, parse_worker_queues
from .context import CliContext, pass_ctx
from .output import echo_json


@click.command()
@click.option("--max-depth", type=click.IntRange(0), help="Waiting jobs a queue may hold.")
@click.option("--max-wait", metavar="DURATION", help="Age the oldest waiting job may reach "
              "(90s, 5m, 1h).")
@click.option("--max-failure-rate", metavar="RATE", help="Failed / finished attempts per "
              "queue over --window (0.05 or 5%).")
@click.option("--window", default="5m", show_default=True, metavar="DURATION",
              help="Window of --max-failure-rate.")
@click.option("--no-workers", is_flag=True, help="A problem when a queue has waiting jobs "
              "and no live worker serves it.")
@click.option("--max-memory", type=click.FloatRange(0), metavar="MB",
              help="Resident memory a worker may use.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--notify", is_flag=True, help="Send alerts for the problems found (at most "
              "once per rule per cooldown).")
@click.option("--webhook", metavar="URL", help="Slack-compatible webhook (default "
              "CONVEYOR_ALERT_WEBHOOK).")
@click.option("--email", "emails", multiple=True, metavar="ADDRESS",
              help="Email alerts here through MAIL_* (default CONVEYOR_ALERT_EMAIL).")
@click.option("--cooldown", metavar="DURATION", help="Between two alerts of one rule "
              "(default CONVEYOR_ALERT_COOLDOWN, 15m).")
@click.option("--state-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Where alert cooldowns are kept (default CONVEYOR_ALERT_STATE_FILE).")
@pass_ctx
def health(ctx: CliContext, max_depth: int | None, max_wait: str | None,
           max_failure_rate: str | None, window: str, no_workers: bool,
           max_memory: float | None, as_json: bool, notify: bool, webhook: str | None,
           emails: tuple[str, ...], cooldown: str | None, state_file: Path | None) -> None:
    """Exit 0 when healthy; otherwise print one line per problem and exit 1 (3 when the
    store is unreachable). For cron, Kubernetes probes and monitoring agents."""
    app = ctx.app
    limits = Thresholds(
        max_depth=max_depth,
        max_wait=None if max_wait is None else parse_duration(max_wait, "--max-wait"),
        max_failure_rate=None if max_failure_rate is None else parse_rate(
            max_failure_rate, "--max-failure-rate"),
        window=parse_duration(window, "--window"),
        no_workers=no_workers,
        max_memory=max_memory,
    )
    notifier = None
    if notify:
        from ..monitoring.alerts import Notifier

        notifier = Notifier.from_app(
            app, webhook=webhook, emails=list(emails) or None, state_path=state_file,
            cooldown=None if cooldown is None else parse_duration(cooldown, "--cooldown"))
    problems = check(app, limits)
    if as_json:
        echo_json({"store": app.display_url, "healthy": not problems,
                   "problems": [p.to_dict() for p in problems]})
    elif problems:
        for problem in problems:
            click.echo(f"{problem.rule}: {problem.message}")
    else:
        click.echo(f"ok: {app.display_url} is healthy")
    if notifier is not None and problems:
        sent = notifier.notify(problems)
        for channel, items in sent.items():
            click.echo(f"alerted {len(items)} problem(s) by {channel}", err=True)
        for error in notifier.errors:
            click.echo(f"conveyor: alert not sent: {error}", err=True)
    if any(p.rule == "store" for p in problems):
        raise SystemExit(EXIT_STORE_DOWN)
    if problems:
        raise SystemExit(EXIT_UNHEALTHY)


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=9108, show_default=True)
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
@pass_ctx
def metrics(ctx: CliContext, port: int, host: str) -> None:
    """Serve Prometheus metrics of the store at http://HOST:PORT/metrics until Ctrl-C."""
    from ..monitoring.prometheus import serve

    app = ctx.app
    app.backend.ping()
    server, _thread = serve(app, port, host)
    done = threading.Event()

    def stop(_signum: int, _frame: Any) -> None:
        done.set()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    click.echo(f"Serving Prometheus metrics of {app.display_url} on "
               f"http://{host}:{server.server_port}/metrics", err=True)
    while not done.wait(1.0):
        pass
    server.shutdown()


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


COMMANDS = [health, metrics, supervisor_config]
