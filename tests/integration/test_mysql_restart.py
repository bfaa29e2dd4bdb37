"""The store restarted under load: a private MariaDB is SIGKILLed and started again while two
burst-mode workers drain; they reconnect, finish, and nothing is lost."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.backends import open_backend

from .mysql_support import dispatch, finish, ledger, wait_until, worker
from .private_mariadb import PrivateMariaDB


@pytest.fixture
def server(tmp_path: Path) -> Iterator[PrivateMariaDB]:
    db = PrivateMariaDB(tmp_path)
    db.install()
    db.start()
    try:
        yield db
    finally:
        db.stop()


@pytest.mark.chaos
@pytest.mark.timeout(180)
def test_workers_ride_over_a_server_restart(server: PrivateMariaDB, tmp_path: Path) -> None:
    url, total, concurrency = server.url, 1500, 4
    backend = open_backend(url)
    backend.migrate()
    dispatch(url, "", total, pause=0.002)
    log = tmp_path / "workers.log"
    procs = [worker(url, "", "--concurrency", str(concurrency), "--stop-when-empty",
                    "--sleep", "0.5", log=log) for _ in range(2)]
    wait_until(lambda: len(ledger(url, "")) >= 300, 60, "the workers to run 300 jobs")
    server.kill()
    server.start()
    assert len(ledger(url, "")) < total, "the restart came too late to be mid-run"
    assert finish(procs, 150) == [0, 0], log.read_text()[-3000:]
    runs = ledger(url, "")
    assert set(runs) == set(range(total)), f"lost: {sorted(set(range(total)) - set(runs))[:20]}"
    # a job may run again only when the restart cut its ack (or its ledger write's reply)
    again = [n for n, count in runs.items() if count > 1]
    assert len(again) <= 2 * concurrency, again
    try:
        assert backend.failed_list() == []
        assert all(s.available == 0 and s.running == 0 for s in backend.queue_stats(time.time()))
    finally:
        backend.close()
    text = log.read_text()
    assert "store trouble" in text, "the workers never noticed the restart"
