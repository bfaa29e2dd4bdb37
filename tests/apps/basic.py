"""A small app for process tests: every execution appends a line to the LEDGER file.

Ledger lines: ``<event> <job-arg> <attempt> <pid>``; appends of short lines are atomic.
"""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

from conveyor import Conveyor, Fail, current_job

app = Conveyor()


def record(event: str, tag: object) -> None:
    ledger = os.environ["LEDGER"]
    line = f"{event} {tag} {current_job().attempt} {os.getpid()}\n"
    fd = os.open(ledger, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


@app.job(name="noop", tries=3, backoff=0)
def noop(n: int) -> None:
    record("done", n)


@app.job(name="slow", tries=3, backoff=0, timeout=60)
def slow(n: int, seconds: float) -> None:
    record("start", n)
    time.sleep(seconds)
    record("done", n)


@app.job(name="sleeper", tries=2, backoff=0, timeout=1)
def sleeper(n: int, seconds: float) -> None:
    record("start", n)
    time.sleep(seconds)  # C-level sleep: cannot be interrupted inside a thread
    record("done", n)


@app.job(name="hog", tries=1)
def hog(n: int, megabytes: int) -> None:
    blob = bytearray(megabytes * 1024 * 1024)
    blob[::4096] = b"x" * len(blob[::4096])
    record("done", n)
    app.extensions_hog = blob  # type: ignore[attr-defined]  # keep it resident


@app.job(name="async_noop", tries=1)
async def async_noop(n: int) -> None:
    await asyncio.sleep(0)
    record("done", n)


@app.job(name="fail_fast", tries=5)
def fail_fast(n: int) -> None:
    record("done", n)
    raise Fail("no point retrying")


@app.job(name="chaos", tries=10, backoff=0, timeout=60)
def chaos(n: int, seconds: float, kind: str = "ok") -> None:
    """The chaos suite's job: ``ok`` runs, ``flaky`` raises on its first attempt, ``fail``
    gives up at once. Every execution leaves a ``start`` line and one ending line."""
    record("start", n)
    time.sleep(seconds)
    if kind == "fail":
        record("fail", n)
        raise Fail("chaos: this job always fails")
    if kind == "flaky" and current_job().attempt == 1:
        record("error", n)
        raise RuntimeError("chaos: flaky on its first attempt")
    record("done", n)


@app.job(name="gated", tries=5, backoff=0, timeout=60)
def gated(n: int, gate: str) -> None:
    """Runs until the file ``<gate>.<attempt>`` exists: the test decides when each attempt
    ends, so a stale and a current attempt can be held open side by side."""
    record("start", n)
    opened = Path(f"{gate}.{current_job().attempt}")
    deadline = time.monotonic() + 60
    while not opened.exists():
        if time.monotonic() > deadline:
            raise RuntimeError(f"gate {opened} never opened")
        time.sleep(0.01)
    record("done", n)
