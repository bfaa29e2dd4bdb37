"""``conveyor demo`` end to end: make the store, start the loopback FCM server, dispatch
the burst, drain it with an in-process burst-mode worker, and report."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..testing.fcm_server import FcmServer
from .app import DemoApp, build_app
from .scenario import Tally, burst, drain, run_stamp, summary
from .store import StoreFacts, create_store

MARKER = ".conveyor-demo"
DEADLINE = 50.0  # seconds: the whole demo is meant to finish well inside a minute
OWN_FILES = ("queue.db", "shop.db", "cache.db")


def prepare_directory(directory: Path | None) -> Path:
    """A fresh temp dir, or ``directory`` (created, or reset if a previous demo's)."""
    if directory is None:
        return Path(tempfile.mkdtemp(prefix="conveyor-demo-"))
    directory = directory.resolve()
    if directory.exists() and any(directory.iterdir()):
        if not (directory / MARKER).exists():
            raise ConfigurationError(
                f"--dir {directory} is not empty and was not made by conveyor demo: "
                "choose an empty or new directory")
        for name in ("mail", "reports"):
            shutil.rmtree(directory / name, ignore_errors=True)
        for path in directory.iterdir():
            if path.name.startswith(OWN_FILES):
                path.unlink()
    directory.mkdir(parents=True, exist_ok=True)
    (directory / MARKER).write_text("made by conveyor demo; safe to delete\n")
    return directory


@dataclass
class DemoRun:
    demo: DemoApp
    facts: StoreFacts
    fcm: FcmServer | None
    tally: Tally
    result: dict[str, Any]

    def close(self) -> None:
        self.demo.close()
        if self.fcm is not None:
            self.fcm.stop()


def run_demo(directory: Path | None, *, concurrency: int = 4,
             env: Mapping[str, str] | None = None,
             say: Callable[[str], None] = lambda _line: None) -> DemoRun:
    """Play the demo; the caller closes the returned run (or keeps it running)."""
    started = time.monotonic()
    env = dict(os.environ if env is None else env)
    path = prepare_directory(directory)
    facts = create_store(path / "shop.db")
    say(f"Created the GroFresh store in {path}: {facts.branches} branches, "
        f"{facts.products:,} products, {facts.customers} customers with {facts.tokens} "
        f"device tokens, {facts.orders:,} orders")
    real_fcm = any(env.get(k) for k in ("FCM_CREDENTIALS", "FCM_CREDENTIALS_JSON"))
    fcm = None if real_fcm else FcmServer(project_id="grofresh-demo").start()
    demo = build_app(path, env, fcm.env() if fcm else None)
    say(f"Mail: {getattr(demo.mail.mailer, 'describe', lambda: demo.mail.mailer.name)()}; "
        f"push: {demo.push.settings.base_url}"
        + (" (loopback FCM-shaped server)" if fcm else ""))
    tally = Tally()
    tally.attach(demo)
    stamp = run_stamp()
    jobs = burst(demo, facts, fcm, stamp)
    t0 = time.perf_counter()
    demo.app.dispatch_many(jobs)
    say(f"Dispatched {len(jobs)} jobs in {(time.perf_counter() - t0) * 1000:.0f} ms "
        f"(one transaction); draining with a burst-mode worker, {concurrency} threads")
    drain(demo, concurrency, started + DEADLINE)
    result = summary(demo, facts, fcm, tally, stamp, time.monotonic() - started)
    return DemoRun(demo, facts, fcm, tally, result)
