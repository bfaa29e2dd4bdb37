"""The core commands against a real SQLite store, as an operator runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conveyor import Conveyor

from .helpers import run_conveyor


@pytest.fixture
def ledger(tmp_path: Path) -> Path:
    return tmp_path / "ledger.txt"


@pytest.fixture
def app(sqlite_url: str) -> Conveyor:
    from tests.apps import basic

    basic.app.use_store(sqlite_url)
    return basic.app


def cli(url: str, ledger: Path, *args: str, input: str | None = None) -> tuple[int, str, str]:
    result = run_conveyor(url, ledger, *args, app=None, input=input)
    return result.returncode, result.stdout, result.stderr


def test_failed_retry_forget_flush(app: Conveyor, sqlite_url: str, ledger: Path) -> None:
    ids = app.dispatch_many([app.get_job("fail_fast").prepare(i) for i in range(3)])
    assert run_conveyor(sqlite_url, ledger, "work", "--stop-when-empty").returncode == 0
    code, out, _ = cli(sqlite_url, ledger, "failed", "--json")
    rows = json.loads(out)
    assert code == 0 and sorted(r["id"] for r in rows) == sorted(ids)
    assert rows[0]["summary"] == "conveyor.errors.Fail: no point retrying"
    code, out, _ = cli(sqlite_url, ledger, "failed")
    assert code == 0 and ids[0] in out and "fail_fast" in out
    code, out, _ = cli(sqlite_url, ledger, "retry", ids[0])
    assert code == 0 and "Retried 1 job(s)." in out
    assert app.backend.jobs_get(ids[0]) is not None
    code, _, err = cli(sqlite_url, ledger, "retry", "no-such-id")
    assert code == 1 and "No failed job with id no-such-id" in err
    code, out, _ = cli(sqlite_url, ledger, "forget", ids[1])
    assert code == 0 and app.backend.failed_get(ids[1]) is None
    code, _, err = cli(sqlite_url, ledger, "forget", ids[1])
    assert code == 1 and "no failed job" in err
    code, out, _ = cli(sqlite_url, ledger, "flush", "--hours", "1")
    assert "Deleted 0 failed job(s)." in out
    code, out, _ = cli(sqlite_url, ledger, "flush")
    assert "Deleted 1 failed job(s)." in out
    code, out, _ = cli(sqlite_url, ledger, "monitor", "--json")
    overview = {q["queue"]: q for q in json.loads(out)["queues"]}
    assert overview["default"]["available"] == 1 and overview["default"]["failed"] == 0


def test_retry_all_by_queue(app: Conveyor, sqlite_url: str, ledger: Path) -> None:
    job = app.get_job("fail_fast")
    app.dispatch_many([job.options(queue="emails").prepare(1), job.prepare(2)])
    run_conveyor(sqlite_url, ledger, "work", "--stop-when-empty")
    code, out, _ = cli(sqlite_url, ledger, "retry", "all", "--queue", "emails")
    assert code == 0 and "Retried 1 job(s)." in out
    code, out, _ = cli(sqlite_url, ledger, "retry", "all")
    assert "Retried 1 job(s)." in out


def test_clear_pause_resume_restart_migrate(app: Conveyor, sqlite_url: str, ledger: Path) -> None:
    app.dispatch_many([app.get_job("noop").options(queue="emails").prepare(i) for i in range(5)])
    code, _, _ = cli(sqlite_url, ledger, "clear", "emails", input="n\n")
    assert code == 1 and app.backend.queue_stats(1e12)[0].available == 5  # nothing deleted
    code, out, _ = cli(sqlite_url, ledger, "clear", "emails", "--force")
    assert code == 0 and "Cleared 5 job(s) from emails." in out
    assert cli(sqlite_url, ledger, "pause", "data")[1] == "Paused data.\n"
    assert app.backend.queues_paused() == {"data"}
    code, out, _ = cli(sqlite_url, ledger, "monitor")
    assert code == 0 and "data" in out and "yes" in out
    assert cli(sqlite_url, ledger, "resume", "data")[1] == "Resumed data.\n"
    assert app.backend.queues_paused() == set()
    code, out, _ = cli(sqlite_url, ledger, "migrate")
    assert code == 0 and "schema is up to date" in out


def test_monitor_views(app: Conveyor, sqlite_url: str, ledger: Path) -> None:
    app.dispatch_many([app.get_job("noop").options(priority="high").prepare(1),
                       app.get_job("noop").options(delay=3600).prepare(2)])
    code, out, _ = cli(sqlite_url, ledger, "monitor", "--json")
    data = json.loads(out)
    rows = {r["queue"]: r for r in data["queues"]}
    assert (rows["default_high"]["available"], rows["default_high"]["running"]) == (1, 0)
    assert (rows["default"]["available"], rows["default"]["scheduled"]) == (0, 1)
    assert list(rows) == ["default_high", "default"]  # in the default worker order
    code, out, _ = cli(sqlite_url, ledger, "monitor")
    assert code == 0 and "default_high" in out and "waiting" in out
    _, out, _ = cli(sqlite_url, ledger, "monitor", "--workers", "--json")
    assert json.loads(out) == []
    _, out, _ = cli(sqlite_url, ledger, "monitor", "--failed", "--json")
    assert json.loads(out) == []


@pytest.mark.parametrize(("args", "message"), [
    (["pause", "bad queue!"], "invalid queue name 'bad queue!'"),
    (["--app", "tests.apps.basic:app", "work", "--queue", "a:5,b"],
     "give a weight to every queue or to none"),
    (["work", "--concurrency", "0"], "Invalid value for '--concurrency'"),
    (["--app", "nomodule:app", "monitor"], "cannot import 'nomodule'"),
    (["--app", "tests.apps.basic", "monitor"], "expected module:attribute"),
    (["--connection", "kafka://x", "monitor"], "unknown store URL 'kafka://x'"),
    (["--connection", "sqlite:////no/such/dir/x.db", "monitor"], "does not exist"),
    (["--connection", "postgresql://u:secret@127.0.0.1:1/db", "monitor"], "127.0.0.1"),
    (["--connection", "redis://:secret@127.0.0.1:1/0", "monitor"], "127.0.0.1"),
])
def test_bad_input_is_one_clear_line(sqlite_url: str, ledger: Path, args: list[str],
                                     message: str) -> None:
    result = run_conveyor(sqlite_url, ledger, *args, app=None)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and "secret" not in result.stderr


def test_work_without_an_app_says_how_to_fix_it(sqlite_url: str, ledger: Path) -> None:
    result = run_conveyor(sqlite_url, ledger, "work", app=None)
    assert result.returncode == 2 and "pass --app module:attribute" in result.stderr
