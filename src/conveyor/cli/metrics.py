"""``conveyor metrics``: the Prometheus exporter."""

from __future__ import annotations

import signal
import threading
from typing import Any

import click

from .context import CliContext, pass_ctx


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


COMMANDS = [metrics]
