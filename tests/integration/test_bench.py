"""`conveyor bench` runs end to end on a small SQLite store and cleans up after itself.
(Speed is reported by the benchmark, never asserted here.)"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor.benchmarking.measure import percentile
from conveyor.benchmarking.recorder import Recorder, Records


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 0.50) == 50.0
    assert percentile(values, 0.99) == 99.0
    assert percentile([], 0.5) == 0.0


def test_recorder_appends_fixed_records(tmp_path: Path) -> None:
    path = tmp_path / "rec.bin"
    recorder = Recorder(str(path))
    for t in (1.0, 2.0, 3.0):
        recorder.record(t)
    records = Records.read(path)
    assert records.dispatched == [1.0, 2.0, 3.0]
    assert len(records) == 3
    assert all(r >= d for d, r in zip(records.dispatched, records.ran, strict=True))


@pytest.mark.timeout(180)
def test_bench_command_reports_every_figure_and_cleans_up(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    result = subprocess.run(
        [sys.executable, "-m", "conveyor", "--connection", f"sqlite:///{db}", "bench",
         "--jobs", "40", "--latency-jobs", "10", "--rate", "100", "--json"],
        capture_output=True, text=True, timeout=170)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert figures["errors"] == []
    assert figures["dispatch_rate"] > 0 and figures["dispatch_many_rate"] > 0
    assert [(d["processes"], d["concurrency"]) for d in figures["drains"]] == \
        [(1, 1), (1, 8), (2, 8)]
    assert all(d["rate"] > 0 and d["peak_rss_mb"] > 0 for d in figures["drains"])
    assert set(figures["latency_ms"]) == {"p50", "p95", "p99", "max"}
    with sqlite3.connect(db) as conn:
        left = conn.execute("SELECT COUNT(*) FROM conveyor_bench_jobs").fetchone()[0]
        workers = conn.execute("SELECT COUNT(*) FROM conveyor_bench_workers").fetchone()[0]
    assert (left, workers) == (0, 0)


def test_bench_drains_option(tmp_path: Path) -> None:
    db = tmp_path / "bench.db"
    base = [sys.executable, "-m", "conveyor", "--connection", f"sqlite:///{db}", "bench",
            "--jobs", "30", "--latency-jobs", "10", "--rate", "100", "--json"]
    result = subprocess.run([*base, "--drains", "1x2, 3x1"], capture_output=True, text=True,
                            timeout=170)
    assert result.returncode == 0, result.stderr
    figures = json.loads(result.stdout)
    assert [(d["processes"], d["concurrency"]) for d in figures["drains"]] == [(1, 2), (3, 1)]
    assert all(d["rate"] > 0 and d["jobs"] == 30 for d in figures["drains"])
    for bad in ("2", "0x8", "2x", "x8,1x1", ","):
        result = subprocess.run([*base, "--drains", bad], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 2 and "--drains" in result.stderr, (bad, result.stderr)
