"""``conveyor demo`` runs end to end in a fresh directory and its summary matches the store."""

from __future__ import annotations

import csv
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from conveyor import Conveyor


@pytest.mark.timeout(120)
def test_demo_exits_0_and_its_summary_matches_the_store(tmp_path: Path) -> None:
    directory = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MAIL_", "FCM_"))}
    done = subprocess.run(
        [sys.executable, "-m", "conveyor", "demo", "--dir", str(directory), "--json"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["seconds"] < 60

    app = Conveyor(f"sqlite:///{directory / 'queue.db'}")
    failed = app.backend.failed_list()
    stats = app.backend.queue_stats(app.clock())
    assert sum(s.available + s.scheduled + s.running for s in stats) == summary["waiting"] == 0
    # every dispatched job either completed (deleted) or sits in the failed store
    assert summary["failed"] == len(failed) == 2
    assert summary["processed"] + summary["failed"] == summary["dispatched"]
    reasons = sorted(r.summary for r in failed)
    assert "rows 2001-2500: row 2345" in reasons[0]
    assert "invalid recipient address" in reasons[1]
    assert {r.id for r in failed} == {j["id"] for j in summary["failed_jobs"]}

    with sqlite3.connect(directory / "shop.db") as shop:
        def one(sql: str) -> int:
            return int(shop.execute(sql).fetchone()[0])

        assert one("SELECT COUNT(*) FROM products WHERE updated_at IS NOT NULL") \
            == summary["products_updated"] == 19_500
        assert one("SELECT COUNT(*) FROM products WHERE id BETWEEN 12001 AND 12500 "
                   "AND updated_at IS NOT NULL") == 0
        assert one("SELECT COUNT(*) FROM fcm_tokens") == 600 - summary["tokens_removed"]
        assert summary["tokens_removed"] == 15
        assert one("SELECT COUNT(*) FROM daily_sales") == summary["analytics_rows"]
        assert one("SELECT SUM(orders) FROM daily_sales") == summary["analytics_orders"] == 4000
        newsletter = one("SELECT COUNT(*) FROM customers WHERE newsletter = 1 AND id != 7")

    emails = list((directory / "mail").glob("*.eml"))
    assert len(emails) == summary["emails_written"]
    # confirmations (one to an invalid address failed) + newsletters + the report email
    assert summary["emails_written"] > newsletter
    (report,) = summary["reports"]
    with (directory / "reports" / report).open(newline="") as handle:
        rows = list(csv.reader(handle))
    assert rows[0] == ["day", "branch", "orders", "revenue"]
    assert sum(int(r[2]) for r in rows[1:]) == 4000
    assert summary["push_delivered"] > 0 and summary["push_throttled"] == 1
