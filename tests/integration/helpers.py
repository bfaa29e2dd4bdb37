"""Run real `conveyor work` processes against a store and read their ledger."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path

    def lines(self) -> list[tuple[str, str, int, int]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            event, tag, attempt, pid = line.split()
            out.append((event, tag, int(attempt), int(pid)))
        return out

    def count(self, event: str) -> Counter[str]:
        return Counter(tag for e, tag, _, _ in self.lines() if e == event)


def worker_env(url: str, ledger: Path, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update({"CONVEYOR_URL": url, "LEDGER": str(ledger),
                "PYTHONPATH": os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])})
    env.update(extra)
    return env


def start_worker(url: str, ledger: Path, *args: str, app: str = "tests.apps.basic:app",
                 log: Path | None = None, **env: str) -> subprocess.Popen[str]:
    """A `conveyor work` process; its output goes to pipes, or is appended to ``log`` (long
    runs must not fill a pipe nobody reads)."""
    command = [sys.executable, "-m", "conveyor", "--app", app, "work", *args]
    if log is None:
        return subprocess.Popen(command, env=worker_env(url, ledger, **env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                cwd=ROOT)
    with log.open("a") as sink:  # the child keeps its own copy of the descriptor
        return subprocess.Popen(command, env=worker_env(url, ledger, **env), stdout=sink,
                                stderr=subprocess.STDOUT, text=True, cwd=ROOT)


def run_conveyor(url: str, ledger: Path, *args: str, timeout: float = 60,
                 app: str | None = "tests.apps.basic:app",
                 input: str | None = None) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "conveyor"]
    if app:
        command += ["--app", app]
    return subprocess.run([*command, *args], env=worker_env(url, ledger), capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, input=input)


def wait_until(condition: Callable[[], bool], timeout: float = 30.0, what: str = "") -> None:
    """Poll a condition with a deadline (not a sleep standing in for synchronisation)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or condition}")
        time.sleep(0.02)


def stop(process: subprocess.Popen[str], sig: int = signal.SIGTERM,
         timeout: float = 30) -> tuple[int, str]:
    process.send_signal(sig)
    _, err = process.communicate(timeout=timeout)
    return process.returncode, err
