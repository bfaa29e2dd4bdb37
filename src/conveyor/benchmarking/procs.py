"""Worker subprocesses for the benchmark, and their resident memory."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


def rss_mb(pid: int) -> float:
    """Resident memory of one process in MB (Linux ``/proc``; 0 where unavailable)."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return 0.0
    return pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


class RssSampler:
    """Samples the resident memory of some processes every 20 ms; keeps the peak of each."""

    def __init__(self, pids: Sequence[int], interval: float = 0.02) -> None:
        self.pids = list(pids)
        self.peak: dict[int, float] = dict.fromkeys(self.pids, 0.0)
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-rss", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            for pid in self.pids:
                self.peak[pid] = max(self.peak[pid], rss_mb(pid))
            if self._stop.wait(self._interval):
                return

    @property
    def max_mb(self) -> float:
        return max(self.peak.values(), default=0.0)


@dataclass
class WorkerProcess:
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None


def start_worker(url: str, prefix: str, queue: str, concurrency: int, record: Path,
                 *, burst: bool, extra: Sequence[str] = ()) -> WorkerProcess:
    """A real ``conveyor work`` process running the benchmark app; its stderr goes to a
    file beside the record file (a pipe nobody reads could fill and stall the worker)."""
    env = dict(os.environ)
    env.update({"CONVEYOR_URL": url, "CONVEYOR_TABLE_PREFIX": prefix,
                "CONVEYOR_BENCH_RECORD": str(record)})
    env.pop("CONVEYOR_APP", None)
    command = [sys.executable, "-m", "conveyor", "--app", "conveyor.benchmarking.jobs:make_app",
               "work", "--queue", queue, "--concurrency", str(concurrency), "--quiet",
               *extra]
    if burst:
        command.append("--stop-when-empty")
    log = record.parent / f"worker-{len(list(record.parent.glob('worker-*.log')))}.log"
    with open(log, "wb") as err:
        proc = subprocess.Popen(command, env=env, stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=err)
    return WorkerProcess(proc, log)


def stop_workers(workers: Sequence[WorkerProcess], timeout: float = 30.0) -> list[str]:
    """SIGTERM what still runs, wait, SIGKILL stragglers; returns the logs of failed ones."""
    for worker in workers:
        if worker.alive():
            worker.proc.send_signal(signal.SIGTERM)
    errors: list[str] = []
    for worker in workers:
        try:
            worker.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait()
        if worker.proc.returncode not in (0, -signal.SIGTERM):
            text = worker.log.read_text(errors="replace") if worker.log.exists() else ""
            errors.append(f"worker exited with {worker.proc.returncode}: {text.strip()[-2000:]}")
    return errors
