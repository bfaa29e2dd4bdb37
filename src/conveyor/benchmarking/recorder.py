"""How benchmark jobs report that they ran, identically for conveyor and for its peers.

Each job appends one 16-byte record (the time it was dispatched, carried as an argument,
and the time it ran) to a file opened with ``O_APPEND``: one ``write`` system call of a
few microseconds, atomic across threads and processes, that needs no server round trip
and survives a worker forking per job. The harness knows a run is complete when the file
holds one record per job, and reads drain times and pickup latencies from it.
"""

from __future__ import annotations

import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

#: the environment variable naming the record file in worker processes
RECORD_ENV = "CONVEYOR_BENCH_RECORD"
_RECORD = struct.Struct("<dd")


class Recorder:
    """Append-only record file; safe to use from many threads and forked processes."""

    def __init__(self, path: str | None = None) -> None:
        self._path = path
        self._fd = -1
        self._pid = 0
        self._lock = threading.Lock()

    def _open(self) -> int:
        path = self._path or os.environ.get(RECORD_ENV)
        if not path:
            raise RuntimeError(f"benchmark job run without {RECORD_ENV} set")
        with self._lock:
            if self._fd < 0 or self._pid != os.getpid():
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
                self._pid = os.getpid()
        return self._fd

    def record(self, dispatched_at: float) -> None:
        fd = self._fd if self._pid == os.getpid() else self._open()
        if fd < 0:
            fd = self._open()
        os.write(fd, _RECORD.pack(dispatched_at, time.time()))


@dataclass(frozen=True, slots=True)
class Records:
    """What the jobs of one run wrote: (dispatched_at, ran_at) pairs."""

    dispatched: list[float]
    ran: list[float]

    @classmethod
    def read(cls, path: Path) -> Records:
        data = path.read_bytes() if path.exists() else b""
        usable = len(data) - len(data) % _RECORD.size
        pairs = list(_RECORD.iter_unpack(data[:usable]))
        return cls([p[0] for p in pairs], [p[1] for p in pairs])

    def __len__(self) -> int:
        return len(self.ran)

    def drain_rate(self) -> float:
        """Jobs per second from the first job run to the last."""
        if len(self.ran) < 2:
            return 0.0
        span = max(self.ran) - min(self.ran)
        return (len(self.ran) - 1) / span if span > 0 else float("inf")

    def latencies(self) -> list[float]:
        return sorted(r - d for d, r in zip(self.dispatched, self.ran, strict=True))


def record_count(path: Path) -> int:
    try:
        return path.stat().st_size // _RECORD.size
    except FileNotFoundError:
        return 0


def wait_for_records(path: Path, count: int, deadline: float, alive: object = None) -> bool:
    """Poll the file size until ``count`` records are in or ``deadline`` (monotonic) passes.

    ``alive`` is an optional callable returning False once the workers have all exited, so a
    crashed worker ends the wait early instead of at the deadline.
    """
    while time.monotonic() < deadline:
        if record_count(path) >= count:
            return True
        if callable(alive) and not alive():
            return record_count(path) >= count
        time.sleep(0.02)
    return False
