"""A small app for process tests: every execution appends a line to the LEDGER file.

Ledger lines: ``<event> <job-arg> <attempt> <pid>``; appends of short lines are atomic.
"""

from __future__ import annotations

import asyncio
import os
import time

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
