"""The benchmark's jobs and the app the worker subprocesses load
(``conveyor --app conveyor.benchmarking.jobs:make_app work …``)."""

from __future__ import annotations

import time

from ..app import Conveyor
from .recorder import Recorder

#: job names: fixed, so the dispatching process and the workers agree
NOOP = "conveyor.bench.record"

_recorder = Recorder()


def record(dispatched_at: float = 0.0, pad: str = "", sleep_ms: float = 0.0) -> None:
    """The benchmark job: optionally sleep, then record when it ran."""
    if sleep_ms:
        time.sleep(sleep_ms / 1000.0)
    _recorder.record(dispatched_at)


def register(app: Conveyor) -> None:
    if NOOP not in app.registry:
        app.job(name=NOOP, queue="default", tries=1)(record)


def make_app() -> Conveyor:
    """The worker side: store and table prefix come from CONVEYOR_URL / CONVEYOR_TABLE_PREFIX."""
    app = Conveyor()
    register(app)
    return app
