"""Every ``conveyor monitor`` view, as tables and as JSON, on a store with known contents."""

from __future__ import annotations

import json

import pytest

from conveyor import Conveyor

from .monitoring_store import NOW, TRACEBACK, Contents, populate, run_cli


@pytest.fixture
def contents(app: Conveyor) -> Contents:
    return populate(app)


def test_overview_json(app: Conveyor, contents: Contents) -> None:
    data = json.loads(run_cli(app, "monitor", "--json").output)
    assert data["store"] == app.display_url and data["window"] == 300.0 and data["now"] == NOW
    assert data["workers"] == 1  # w-dead is gone
    assert data["queues"] == [
        {"queue": "default", "available": 1, "scheduled": 0, "running": 0, "failed": 0,
         "oldest_age": 5.0, "paused": False, "throughput_per_min": 0.8, "runtime_avg": 3.0,
         "runtime_p95": 3.0, "workers": 1},
        {"queue": "emails", "available": 3, "scheduled": 1, "running": 1, "failed": 2,
         "oldest_age": 100.0, "paused": False, "throughput_per_min": 2.0, "runtime_avg": 0.139,
         "runtime_p95": 0.4375, "workers": 1},
        {"queue": "reports", "available": 1, "scheduled": 0, "running": 0, "failed": 0,
         "oldest_age": 30.0, "paused": True, "throughput_per_min": 0.0, "runtime_avg": None,
         "runtime_p95": None, "workers": 0},
        {"queue": "images", "available": 1, "scheduled": 0, "running": 0, "failed": 0,
         "oldest_age": 30.0, "paused": False, "throughput_per_min": 0.0, "runtime_avg": None,
         "runtime_p95": None, "workers": 0},
    ]
    assert [w.name for w in app.backend.worker_list()] == ["w1"]


def test_overview_table(app: Conveyor, contents: Contents) -> None:
    out = run_cli(app, "monitor").output
    assert "jobs/min (5m)" in out

    def cells(queue: str) -> list[str]:
        line = next(line for line in out.splitlines() if f"│ {queue} " in line)
        return [c.strip() for c in line.split("│")[1:-1]]

    assert cells("emails") == [
        "emails", "3", "1", "1", "2", "2.0", "139ms", "438ms", "100.0s", "1", ""]
    assert cells("reports") == ["reports", "1", "0", "0", "0", "0.0", "-", "-", "30.0s", "0",
                                "yes"]
    assert "1 live worker(s)" in out


EMAILS_1H = {
    "queue": "emails", "processed": 10, "succeeded": 5, "failed": 2, "released": 3,
    "timed_out": 1, "throughput_per_min": 0.166667, "failure_rate": 0.2, "runtime_avg": 0.139,
    "runtime_p50": 0.08125, "runtime_p95": 0.4375, "runtime_p99": 0.45, "runtime_max": 0.45,
    "wait_avg": 0.4, "wait_max": 2.0,
}


def test_stats_json(app: Conveyor, contents: Contents) -> None:
    data = json.loads(run_cli(app, "monitor", "--stats", "--since", "1h", "--json").output)
    assert data["since"] == 3600.0
    assert data["total"] == {
        "processed": 14, "succeeded": 9, "failed": 2, "released": 3, "timed_out": 1,
        "throughput_per_min": 0.233333, "failure_rate": 0.142857, "runtime_avg": 0.956429,
        "runtime_p50": 0.09375, "runtime_p95": 3.0, "runtime_p99": 3.0, "runtime_max": 3.0,
        "wait_avg": 0.314286, "wait_max": 2.0,
    }
    assert [q["queue"] for q in data["queues"]] == ["default", "emails"]
    assert data["queues"][1] == EMAILS_1H
    assert data["jobs"][1] == {"name": "shop.send"} | EMAILS_1H
    assert data["jobs"][0]["name"] == "shop.report" and data["jobs"][0]["processed"] == 4
    # a wider window takes in the samples of two hours ago
    wide = json.loads(run_cli(app, "monitor", "--stats", "--since", "3h", "--json").output)
    assert (wide["queues"][1]["processed"], wide["queues"][1]["failed"]) == (15, 7)


def test_stats_table(app: Conveyor, contents: Contents) -> None:
    out = run_cli(app, "monitor", "--stats").output
    assert "Queues, last 1h" in out and "Jobs, last 1h" in out
    row = next(line for line in out.splitlines() if "shop.send" in line)
    assert [c.strip() for c in row.split("│")[1:-1]] == [
        "emails", "shop.send", "10", "2", "3", "1", "0.17", "20.0%", "139ms", "81ms", "438ms",
        "450ms", "450ms", "400ms", "2.0s"]


def test_failed_list_and_show(app: Conveyor, contents: Contents) -> None:
    rows = json.loads(run_cli(app, "monitor", "--failed", "--json").output)
    assert [r["id"] for r in rows] == contents.failed_ids[::-1]  # newest first
    assert rows[0] == {"id": contents.failed_ids[1], "queue": "emails", "name": "shop.send",
                       "attempts": 1, "failed_at": NOW - 19, "summary": "ValueError: card declined"}
    out = run_cli(app, "monitor", "--failed").output
    assert "ValueError: card declined" in out and contents.failed_ids[0] in out
    detail = json.loads(run_cli(app, "monitor", "--failed", "--show", contents.failed_ids[0],
                                "--json").output)
    assert detail["payload"] == {"v": 1, "job": "shop.send", "args": [1], "kwargs": {},
                                 "meta": {}}
    assert detail["exception"] == TRACEBACK and detail["attempts"] == 1
    text = run_cli(app, "monitor", "--failed", "--show", contents.failed_ids[0]).output
    assert TRACEBACK in text and '"job": "shop.send"' in text
    missing = run_cli(app, "monitor", "--failed", "--show", "nope")
    assert missing.exit_code == 1


def test_workers_view(app: Conveyor, contents: Contents) -> None:
    (w,) = json.loads(run_cli(app, "monitor", "--workers", "--json").output)
    assert w == {
        "name": "w1", "host": "web-1", "pid": 4242, "state": "running",
        "queues": ["emails", "default"], "concurrency": 4,
        "current": [{"id": contents.running_id, "name": "shop.send", "queue": "emails",
                     "attempt": 1, "started": NOW - 3, "progress": 40.0, "running_for": 3.0}],
        "processed": 14, "failed": 2, "memory_mb": 123.4, "started_at": NOW - 600,
        "last_heartbeat": NOW - 5, "heartbeat_age": 5.0,
    }
    out = run_cli(app, "monitor", "--workers").output
    assert "w1" in out and "1/4" in out and "123.4" in out and "w-dead" not in out
    assert "(3.0s, 40%)" in out


def test_retry_and_clear_failed(app: Conveyor, contents: Contents) -> None:
    first, second = contents.failed_ids
    result = run_cli(app, "monitor", f"--retry={first},nope", "--json")
    assert json.loads(result.output) == {"retried": [first], "missing": ["nope"]}
    stats = {s.queue: s for s in app.backend.queue_stats(NOW)}
    assert (stats["emails"].failed, stats["emails"].available) == (1, 4)
    assert run_cli(app, "monitor", "--retry=nope").exit_code == 1
    result = run_cli(app, "monitor", "--clear-failed")
    assert result.output.strip() == "Deleted 1 failed job(s)."
    assert app.backend.failed_get(second) is None


def test_empty_store(app: Conveyor) -> None:
    assert json.loads(run_cli(app, "monitor", "--json").output)["queues"] == []
    assert "No queues have jobs yet." in run_cli(app, "monitor").output
    assert "No failed jobs." in run_cli(app, "monitor", "--failed").output
