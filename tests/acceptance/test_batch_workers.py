"""Batches and chains with real ``conveyor work`` subprocesses, on every store.

Callbacks write rows into a SQLite results file and ``bt.work`` appends one line per run,
so the tests count exactly how often each thing happened. A 2,000-job batch by default;
``CONVEYOR_LONG=1`` runs the 10,000-job version.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.backends import open_backend
from tests.backends.stores import STORES
from tests.integration.batch_jobs import count, create_app, runs

ROOT = Path(__file__).resolve().parents[2]
BIG = 10_000 if os.environ.get("CONVEYOR_LONG") == "1" else 2_000
APP = "tests.integration.batch_jobs:create_app"

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]


class Env:
    def __init__(self, tmp_path: Path, url: str, prefix: str) -> None:
        if prefix and not prefix.replace("_", "").isalnum():
            # a key prefix with ':' (Redis) is not a valid table_prefix setting: the URL
            # carries it instead
            url, prefix = f"{url}{'&' if '?' in url else '?'}prefix={prefix}", ""
        self.tmp = tmp_path
        self.results = tmp_path / "results.db"
        self.env = {**os.environ, "CONVEYOR_URL": url, "CONVEYOR_TABLE_PREFIX": prefix,
                    "BATCH_RESULTS": str(self.results),
                    "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
        os.environ["BATCH_RESULTS"] = str(self.results)  # for jobs run in this process
        self.app = create_app(url, prefix)

    def worker(self, *args: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [sys.executable, "-m", "conveyor", "--app", APP, "work", "--stop-when-empty",
             "--quiet", "--sleep", "0.2", *args],
            cwd=self.tmp, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "conveyor", "--app", APP, *args],
                              cwd=self.tmp, env=self.env, capture_output=True, timeout=60)
        assert done.returncode == 0, done.stderr.decode()
        return done.stdout.decode()

    def drain(self, workers: int = 4, *args: str) -> None:
        procs = [self.worker("--concurrency", "4", *args) for _ in range(workers)]
        for proc in procs:
            _, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err.decode()[-2000:]

    def results_count(self) -> dict[str, int]:
        return count(self.results)

    def runs(self) -> list[int]:
        return runs(self.results)


@pytest.fixture(params=sorted(STORES))
def env(request: pytest.FixtureRequest, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    with STORES[request.param](tmp_path) as (url, prefix):
        backend = open_backend(url, table_prefix=prefix)
        backend.migrate()
        if not backend.capabilities.batches:
            backend.close()
            pytest.skip(f"{request.param} has capabilities.batches = False")
        backend.close()
        monkeypatch.setenv("BATCH_RESULTS", str(tmp_path / "results.db"))
        e = Env(tmp_path, url, prefix)
        yield e
        e.app.close()


def test_big_batch_fires_each_callback_exactly_once(env: Env) -> None:
    app = env.app
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    batch_id = (app.batch([work.prepare(i) for i in range(BIG)], name="big")
                .then(record.prepare("then")).catch(record.prepare("catch"))
                .finally_(record.prepare("finally")).progress(record.prepare("progress"), 10)
                .dispatch())
    env.drain(4)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.succeeded and batch.total_jobs == BIG
    got = env.results_count()
    assert got.pop("then") == 1 and got.pop("finally") == 1
    assert 1 <= got.pop("progress") <= 10 and got == {}
    assert sorted(set(env.runs())) == list(range(BIG))


def test_failure_cancels_the_rest_and_fires_catch_once(env: Env) -> None:
    app = env.app
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    items = [work.prepare(0, fail=True)] + [work.prepare(i, pause=0.002) for i in range(1, 400)]
    batch_id = (app.batch(items).then(record.prepare("then")).catch(record.prepare("catch"))
                .finally_(record.prepare("finally")).dispatch())
    env.drain(2)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.cancelled and batch.finished
    assert batch.failed_jobs == 1 and batch.pending_jobs == 1
    assert env.results_count() == {"catch": 1, "finally": 1}
    assert len(env.runs()) < 400  # jobs not started when the batch was cancelled never ran


def test_allow_failures_fires_finally_once_after_all_ran(env: Env) -> None:
    app = env.app
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    items = [work.prepare(i, fail=i % 100 == 7) for i in range(300)]
    batch_id = (app.batch(items).allow_failures().then(record.prepare("then"))
                .catch(record.prepare("catch")).finally_(record.prepare("finally")).dispatch())
    env.drain(4)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.finished and not batch.cancelled
    assert batch.failed_jobs == 3 and len(batch.failed_job_ids) == 3
    assert sorted(env.runs()) == list(range(300))
    assert env.results_count() == {"catch": 1, "finally": 1}


def test_killed_worker_does_not_change_the_counts(env: Env) -> None:
    app = env.app
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    total = 600
    batch_id = (app.batch([work.options(tries=5).prepare(i, pause=0.005) for i in range(total)])
                .then(record.prepare("then")).finally_(record.prepare("finally")).dispatch())
    victim = env.worker("--concurrency", "4", "--lease", "2")
    others = [env.worker("--concurrency", "4", "--lease", "2") for _ in range(3)]
    deadline = time.monotonic() + 120
    while len(env.runs()) < total // 5 and time.monotonic() < deadline:
        time.sleep(0.05)  # polling a condition with a deadline
    victim.send_signal(signal.SIGKILL)
    victim.wait(30)
    for proc in others:
        _, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err.decode()[-2000:]
    # the victim's jobs come back once their leases expire: drain until the batch is done
    while time.monotonic() < deadline:
        batch = app.find_batch(batch_id)
        assert batch is not None
        if batch.finished and env.results_count().get("finally"):
            break
        env.drain(1, "--lease", "2")
        time.sleep(0.2)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.succeeded and batch.total_jobs == total
    assert env.results_count() == {"then": 1, "finally": 1}
    ran = env.runs()
    assert sorted(set(ran)) == list(range(total))
    assert len(ran) - total <= 4  # only what the kill explains: the victim's running jobs


def test_chain_stops_at_the_failing_link(env: Env) -> None:
    app = env.app
    work, record = app.get_job("bt.work"), app.get_job("bt.record")
    app.chain([record.prepare("a"), record.prepare("b")]).catch(record.prepare("no")).dispatch()
    app.chain([record.prepare("x"), work.prepare(1, fail=True), record.prepare("never")]) \
        .catch(record.prepare("chain-catch")).dispatch()
    env.drain(2)
    assert env.results_count() == {"a": 1, "b": 1, "x": 1, "chain-catch": 1}


def test_retrying_failed_jobs_completes_the_batch(env: Env) -> None:
    app = env.app
    work, flaky, record = (app.get_job(n) for n in ("bt.work", "bt.flaky", "bt.record"))
    items = [flaky.prepare(i) for i in range(3)] + [work.prepare(i) for i in range(3, 20)]
    batch_id = (app.batch(items, name="retry-me").allow_failures()
                .then(record.prepare("then")).finally_(record.prepare("finally")).dispatch())
    env.drain(2)
    assert env.results_count() == {"finally": 1}
    listing = env.cli("batches")
    assert batch_id in listing and "retry-me" in listing
    shown = env.cli("batches", "show", batch_id)
    assert "failed 3" in shown
    Path(str(env.results) + ".fixed").touch()
    assert "Retried 3 job(s)" in env.cli("batches", "retry", batch_id)
    env.drain(2)
    batch = app.find_batch(batch_id)
    assert batch is not None and batch.succeeded and batch.failed_job_ids == []
    assert env.results_count() == {"finally": 1, "then": 1}
    assert "Pruned 1 batch(es)" in env.cli("batches", "prune", "--hours", "0")
    assert app.find_batch(batch_id) is None
