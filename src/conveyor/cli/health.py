"""``conveyor health``: exit non-zero when thresholds are crossed; ``--notify`` alerts."""

from __future__ import annotations

from pathlib import Path

import click

from ..monitoring.health import EXIT_STORE_DOWN, EXIT_UNHEALTHY, Thresholds, check
from ..monitoring.stats import parse_duration, parse_rate
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


COMMANDS = [health]
