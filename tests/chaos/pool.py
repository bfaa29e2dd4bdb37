"""A pool of real `conveyor work` processes that the chaos suite abuses, and a ledger read
incrementally (a long run's ledger is too big to re-read on every poll)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time
from collections import defaultdict
from pathlib import Path

from tests.integration.helpers import Ledger, start_worker, wait_until

from .analysis import ENDINGS, Fates
from .stores import ChaosTarget


class TailLedger(Ledger):
    """The ledger, plus what is running right now (per pid), read as it grows."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self._offset = 0
        self._partial = b""
        self.size = 0  # lines read so far
        self.open_runs: dict[int, set[tuple[str, int]]] = defaultdict(set)
        self.attempts: dict[str, int] = {}  # tag -> highest attempt started

    def poll(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as handle:
            handle.seek(self._offset)
            data = handle.read()
        self._offset += len(data)
        data = self._partial + data
        *complete, self._partial = data.split(b"\n")
        for raw in complete:
            event, tag, attempt_text, pid_text = raw.decode().split()
            attempt, pid = int(attempt_text), int(pid_text)
            if event == "start":
                self.open_runs[pid].add((tag, attempt))
                self.attempts[tag] = max(attempt, self.attempts.get(tag, 0))
            elif event in ENDINGS:
                self.open_runs[pid].discard((tag, attempt))
        self.size += len(complete)
        return self.size


class WorkerPool:
    """``size`` workers kept running; faults are counted and remembered by pid."""

    def __init__(self, target: ChaosTarget, ledger: TailLedger, logs: Path, size: int,
                 args: list[str], rng: random.Random) -> None:
        self.target, self.ledger, self.logs, self.size = target, ledger, logs, size
        self.args, self.rng = args, rng
        self.running: list[subprocess.Popen[str]] = []
        self.exited: list[subprocess.Popen[str]] = []
        self.fates = Fates()
        self.counts: dict[str, int] = defaultdict(int)
        self.log_of: dict[int, Path] = {}
        logs.mkdir(exist_ok=True)

    def fill(self) -> None:
        """Start workers up to ``size``, as a supervisor would, replacing any that exited
        (one started while the store was unreachable exits at once: it runs nothing)."""
        for process in [p for p in self.running if p.poll() is not None]:
            self._retire(process)
        while len(self.running) < self.size:
            log = self.logs / f"worker-{len(self.running) + len(self.exited)}.log"
            process = start_worker(self.target.url, self.ledger.path, *self.args, log=log,
                                   **self.target.env())
            self.log_of[process.pid] = log
            self.running.append(process)

    def _pick(self, busy: bool = True) -> subprocess.Popen[str]:
        self.ledger.poll()
        candidates = [p for p in self.running if p.poll() is None]
        if busy:
            candidates = [p for p in candidates if self.ledger.open_runs.get(p.pid)] or \
                candidates
        return self.rng.choice(candidates)

    def _retire(self, process: subprocess.Popen[str]) -> None:
        self.running.remove(process)
        self.exited.append(process)

    def kill(self) -> None:
        """SIGKILL a busy worker and start another: its leases must expire and be recovered."""
        victim = self._pick()
        victim.kill()
        victim.wait(30)
        self.fates.killed.add(victim.pid)
        self.counts["kills"] += 1
        self._retire(victim)
        self.fill()

    def term(self) -> None:
        """SIGTERM a worker (it finishes its jobs and exits 0) and start another."""
        victim = self._pick()
        victim.send_signal(signal.SIGTERM)
        self.counts["terms"] += 1
        self._retire(victim)
        self.fill()  # the old one drains while the new one starts

    def stop_past_lease(self, lease: float) -> bool:
        """SIGSTOP a busy worker until others have re-run what it held, then SIGCONT it.
        Returns whether its jobs were taken over (False: nothing moved, e.g. the stopped
        process held SQLite's write lock, which stalls every writer until it resumes)."""
        victim = self._pick()
        held = set(self.ledger.open_runs.get(victim.pid, set()))
        os.kill(victim.pid, signal.SIGSTOP)
        self.fates.stopped.add(victim.pid)
        self.counts["stops"] += 1

        def taken_over() -> bool:
            self.ledger.poll()  # a run that ended just before the stop took effect is done
            still = self.ledger.open_runs.get(victim.pid, set())
            return all(self.ledger.attempts.get(tag, 0) > attempt or (tag, attempt) not in still
                       for tag, attempt in held)

        try:
            wait_until(taken_over, timeout=lease * 4 + 10, what="a stopped worker's jobs "
                       "to be taken over")
            moved = bool(held)
        except AssertionError:
            moved = False
        finally:
            os.kill(victim.pid, signal.SIGCONT)
        self.counts["stops taken over" if moved else "stops not taken over"] += 1
        return moved

    def stop_all(self, timeout: float = 60) -> None:
        for process in self.running:
            process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for process in self.running + self.exited:
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        self.exited.extend(self.running)
        self.running = []

    def note_trouble(self) -> None:
        """Workers that logged store trouble or a lost lease may have been superseded
        without being signalled: a lease they could not renew expired."""
        for pid, log in self.log_of.items():
            text = log.read_text(errors="replace") if log.exists() else ""
            if "store trouble" in text or "was lost" in text:
                self.fates.troubled.add(pid)

    def log_text(self) -> str:
        return "\n".join(f"--- pid {pid}\n" + log.read_text(errors="replace")[-3000:]
                         for pid, log in self.log_of.items() if log.exists())
