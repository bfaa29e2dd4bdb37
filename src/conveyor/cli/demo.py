"""``conveyor demo``: the GroFresh sample store, end to end, on the embedded default."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ..monitoring import views
from ..worker.logs import configure_logging
from .output import ago, console, echo_json, table

if TYPE_CHECKING:  # the demo's modules load when it runs: every command starts faster
    from ..demo.runner import DemoRun


@click.command()
@click.option("--dir", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Working directory (default: a fresh temporary directory).")
@click.option("--keep-running", is_flag=True,
              help="Leave the worker and the FCM server up to explore with the CLI.")
@click.option("--concurrency", "-n", type=click.IntRange(1, 64), default=4, show_default=True,
              help="Worker threads.")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON only.")
@click.option("--verbose", "-v", is_flag=True, help="Log every job.")
def demo(directory: Path | None, keep_running: bool, concurrency: int, as_json: bool,
         verbose: bool) -> None:
    """Run the GroFresh sample store: emails, push, a report, 20,000 price updates."""
    from ..demo.runner import run_demo

    configure_logging("text", logging.INFO if verbose else logging.ERROR)
    say = (lambda _line: None) if as_json else click.echo
    run = run_demo(directory, concurrency=concurrency, say=say)
    try:
        result = run.result
        if as_json:
            echo_json(result)
        else:
            show(run)
        if keep_running:
            keep(run)
    finally:
        run.close()
    if result["waiting"]:
        raise SystemExit(1)


def show(run: DemoRun) -> None:
    from ..demo.scenario import QUEUE_ORDER

    app = run.demo.app
    rows = views.overview(app)["queues"]
    by_queue = {str(r["queue"]): r for r in rows}
    seen = set(by_queue) | {q for q, _e in run.tally.outcomes}
    order = sorted(seen, key=lambda q: (
        QUEUE_ORDER.index(q) if q in QUEUE_ORDER else len(QUEUE_ORDER), q))
    outcomes = run.tally.outcomes
    console().print(table(
        f"Queues on {app.display_url}",
        ["queue", "processed", "retried", "failed", "waiting", "scheduled", "running",
         "in failed store", "avg runtime"],
        [(q, outcomes[(q, "job_succeeded")], outcomes[(q, "job_released")],
          outcomes[(q, "job_failed")], by_queue.get(q, {}).get("available", 0),
          by_queue.get(q, {}).get("scheduled", 0), by_queue.get(q, {}).get("running", 0),
          by_queue.get(q, {}).get("failed", 0),
          ago(run.tally.runtime[q] / max(1, sum(n for (qq, _e), n in outcomes.items()
                                                if qq == q))))
         for q in order]))
    r = run.result
    click.echo(f"""
Summary ({r['seconds']:.1f}s): {r['dispatched']} jobs dispatched, {r['processed']} processed, \
{r['retried']} retried, {r['failed']} failed, {r['waiting']} still waiting
  emails written      {r['emails_written']} (.eml files in {r['directory']}/mail)
  push delivered      {r['push_delivered']}; {r['tokens_removed']} unregistered tokens removed \
from the store; {r['push_throttled']} send throttled (429) and re-sent alone after Retry-After
  products updated    {r['products_updated']:,} of {r['products_total']:,} \
(one batch rolled back, see below)
  report              {', '.join(r['reports']) or 'none'} (emailed to the requester)
  analytics           {r['analytics_rows']} day x branch rows, {r['analytics_orders']:,} orders
""")
    if r["failed_jobs"]:
        click.echo("Failed jobs (deliberate; `conveyor retry ID` puts one back):")
        for job in r["failed_jobs"]:
            click.echo(f"  {job['id']}  {job['queue']}  {job['job']}\n      {job['reason']}")
    click.echo(f"\nExplore: conveyor -c {app.display_url} monitor --failed")


def keep(run: DemoRun) -> None:
    from ..demo.scenario import QUEUE_ORDER
    from ..worker.options import WorkerOptions
    from ..worker.runner import Worker

    app = run.demo.app
    click.echo(f"\nThe worker keeps running on {app.display_url} (Ctrl-C to stop). Try:\n"
               f"  conveyor -c {app.display_url} monitor\n"
               f"  conveyor -c {app.display_url} retry all")
    Worker(app, WorkerOptions(queues=list(QUEUE_ORDER), concurrency=4, sleep=1.0,
                              name="demo-worker-live")).run()


COMMANDS = [demo]
