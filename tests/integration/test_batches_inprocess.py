"""Batches and chains driven in-process with burst-mode workers (SQLite)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conveyor import Conveyor
from conveyor.testing import run_until_empty

from .batch_jobs import count, create_app


@pytest.fixture
def app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Conveyor:
    monkeypatch.setenv("BATCH_RESULTS", str(tmp_path / "results.db"))
    return create_app(f"sqlite:///{tmp_path / 'store.db'}")


def results(tmp_path: Path) -> dict[str, int]:
    return count(tmp_path / "results.db")


def test_batch_success_fires_then_and_finally_once(app: Conveyor, tmp_path: Path) -> None:
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    batch_id = (app.batch([work.prepare(i) for i in range(50)], name="fifty")
                .then(record.prepare("then")).catch(record.prepare("catch"))
                .finally_(record.prepare("finally")).progress(record.prepare("progress"), 25)
                .dispatch())
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.total_jobs == 50 and batch.progress == 0
    run_until_empty(app, concurrency=4)
    batch.refresh()
    assert batch.finished and batch.succeeded and batch.progress == 100
    got = results(tmp_path)
    assert got.get("then") == 1 and got.get("finally") == 1 and "catch" not in got
    assert 1 <= got.get("progress", 0) <= 4


def test_failure_without_allow_failures_cancels(app: Conveyor, tmp_path: Path) -> None:
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    jobs = [work.prepare(0, fail=True)] + [work.prepare(i) for i in range(1, 30)]
    batch_id = (app.batch(jobs).then(record.prepare("then")).catch(record.prepare("catch"))
                .finally_(record.prepare("finally")).dispatch())
    run_until_empty(app, concurrency=1)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.cancelled and batch.finished
    assert batch.failed_jobs == 1 and len(batch.failed_job_ids) == 1
    assert results(tmp_path) == {"catch": 1, "finally": 1}


def test_allow_failures_then_retry_fires_then(app: Conveyor, tmp_path: Path) -> None:
    work, flaky, record = (app.get_job(n) for n in ("bt.work", "bt.flaky", "bt.record"))
    jobs = [flaky.prepare(0), flaky.prepare(1)] + [work.prepare(i) for i in range(2, 10)]
    batch_id = (app.batch(jobs).allow_failures().then(record.prepare("then"))
                .catch(record.prepare("catch")).finally_(record.prepare("finally")).dispatch())
    run_until_empty(app, concurrency=2)
    batch = app.find_batch(batch_id)
    assert batch is not None and not batch.cancelled and batch.finished
    assert batch.failed_jobs == 2 and batch.pending_jobs == 2
    assert results(tmp_path) == {"catch": 1, "finally": 1}
    (tmp_path / "results.db.fixed").touch()
    assert sorted(batch.retry_failed()) == sorted(batch.failed_job_ids)
    run_until_empty(app)
    batch.refresh()
    assert batch.succeeded and batch.failed_job_ids == []
    assert results(tmp_path) == {"catch": 1, "finally": 1, "then": 1}


def test_jobs_can_add_to_their_batch(app: Conveyor, tmp_path: Path) -> None:
    grow, record = app.get_job("bt.grow"), app.get_job("bt.record")
    batch_id = app.batch([grow.prepare(5)]).then(record.prepare("then")).dispatch()
    run_until_empty(app)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.total_jobs == 6 and batch.succeeded
    assert results(tmp_path) == {"then": 1}


def test_cancel_skips_jobs_not_started(app: Conveyor, tmp_path: Path) -> None:
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    batch_id = (app.batch([work.prepare(i) for i in range(5)]).then(record.prepare("then"))
                .finally_(record.prepare("finally")).dispatch())
    batch = app.find_batch(batch_id)
    assert batch is not None
    batch.cancel()
    assert batch.cancelled
    worker = run_until_empty(app)
    assert worker.processed == 6  # five skipped, one finally
    batch.refresh()
    assert batch.finished and batch.pending_jobs == 0 and not batch.succeeded
    assert results(tmp_path) == {"finally": 1}


def test_empty_batch_is_done_at_once(app: Conveyor, tmp_path: Path) -> None:
    record = app.get_job("bt.record")
    batch_id = app.batch([]).then(record.prepare("then")).dispatch()
    run_until_empty(app)
    assert results(tmp_path) == {"then": 1}
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.succeeded


def test_chain_runs_in_order_and_stops_at_failure(app: Conveyor, tmp_path: Path) -> None:
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    app.chain([record.prepare("a"), record.prepare("b"), record.prepare("c")]).dispatch()
    app.chain([record.prepare("x"), work.prepare(1, fail=True), record.prepare("never")]) \
        .catch(record.prepare("chain-catch")).dispatch()
    run_until_empty(app)
    assert results(tmp_path) == {"a": 1, "b": 1, "c": 1, "x": 1, "chain-catch": 1}


def test_chain_containing_a_batch(app: Conveyor, tmp_path: Path) -> None:
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    inner = app.batch([work.prepare(i) for i in range(5)], name="inner") \
        .then(record.prepare("inner-then"))
    app.chain([record.prepare("before"), inner, record.prepare("after")]).dispatch()
    run_until_empty(app, concurrency=2)
    assert results(tmp_path) == {"before": 1, "inner-then": 1, "after": 1}


def test_batch_containing_chains(app: Conveyor, tmp_path: Path) -> None:
    record = app.get_job("bt.record")
    chains = [app.chain([record.prepare(f"c{i}-1"), record.prepare(f"c{i}-2")])
              for i in range(3)]
    batch_id = app.batch(chains).then(record.prepare("then")).dispatch()
    run_until_empty(app, concurrency=2)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.total_jobs == 6 and batch.succeeded
    got = results(tmp_path)
    assert got.pop("then") == 1 and got == {f"c{i}-{j}": 1 for i in range(3) for j in (1, 2)}


def test_fake_records_batch_jobs(app: Conveyor) -> None:
    work = app.get_job("bt.work")
    with app.fake() as fake:
        batch_id = app.batch([work.prepare(i) for i in range(3)]).dispatch()
    fake.assert_dispatched(work, 3)
    fake.assert_dispatched_with_batch(work, batch_id)


def test_job_lost_with_its_worker_counts_as_failed(app: Conveyor, tmp_path: Path) -> None:
    import time

    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    batch_id = (app.batch([work.prepare(1), work.prepare(2)]).allow_failures()
                .catch(record.prepare("catch")).finally_(record.prepare("finally")).dispatch())
    # a worker that reserved job 1 and died (tries=1); the clock moves a minute on, past its lease
    (lost,) = app.backend.jobs_reserve(["default"], 1, 1.0, "dead", time.time())
    app.clock = lambda: time.time() + 60
    run_until_empty(app)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.failed_job_ids == [lost.id] and batch.finished
    assert results(tmp_path) == {"catch": 1, "finally": 1}


def test_cli_list_show_cancel(app: Conveyor, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from conveyor.cli.main import cli

    work = app.get_job("bt.work")
    batch_id = app.batch([work.prepare(i) for i in range(3)], name="cli").dispatch()
    url = app.settings.url
    runner = CliRunner()

    def run(*args: str) -> str:
        result = runner.invoke(cli, ["--connection", url, *args])
        assert result.exit_code == 0, result.output
        return result.output

    assert "cli" in run("batches", "--running")
    assert json.loads(run("monitor", "--batches", "--json"))[0]["id"] == batch_id
    assert "Running batches" in run("monitor", "--batches")
    shown = json.loads(run("batches", "show", batch_id, "--json"))
    assert shown["total_jobs"] == 3 and shown["state"] == "running"
    assert "Cancelled batch" in run("batches", "cancel", batch_id)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.cancelled
    missing = runner.invoke(cli, ["--connection", url, "batches", "show", "nope"])
    assert missing.exit_code == 1 and "no batch with id nope" in missing.output
    run_until_empty(app)
    assert "No running batches." in run("batches", "--running")
    assert json.loads(run("batches", "--json"))[0]["state"] == "cancelled, finished"


def test_encrypted_links_and_callbacks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.fernet import Fernet

    monkeypatch.setenv("BATCH_RESULTS", str(tmp_path / "results.db"))
    monkeypatch.setenv("CONVEYOR_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    app = create_app(f"sqlite:///{tmp_path / 'store.db'}")
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    sealed = record.options(encrypted=True)
    batch_id = (app.batch([work.options(encrypted=True).prepare(i) for i in range(3)])
                .then(sealed.prepare("then")).dispatch())
    head = app.chain([sealed.prepare("a"), sealed.prepare("b")]).dispatch()
    stored = app.backend.jobs_get(head)
    assert stored is not None and '"enc"' in stored.payload and "chain" not in stored.payload
    # a link's meta is added inside the envelope, which is sealed again
    from conveyor.links import with_meta
    from conveyor.serialization import decode_payload

    resealed = with_meta(app, stored.payload, {"x": 1})
    assert '"enc"' in resealed and '"x"' not in resealed
    assert decode_payload(resealed, None, app.payload_cipher()).meta["x"] == 1
    run_until_empty(app)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.succeeded
    assert results(tmp_path) == {"then": 1, "a": 1, "b": 1}
