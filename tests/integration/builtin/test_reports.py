"""GenerateReportJob: byte-exact streamed CSV, bounded memory, atomic files, email."""

from __future__ import annotations

import csv
import email
import email.policy
import io
import sqlite3
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.builtin import email as mail
from conveyor.builtin import reports
from conveyor.builtin.config import MailSettings
from conveyor.testing import run_until_empty

ROWS = 100_000
QUERY = ("SELECT id, day, branch_id, customer, total FROM sales "
         "WHERE day BETWEEN :start_date AND :end_date "
         "AND (:branch_id IS NULL OR branch_id = :branch_id) ORDER BY id")
COUNT = ("SELECT COUNT(*) FROM sales WHERE day BETWEEN :start_date AND :end_date "
         "AND (:branch_id IS NULL OR branch_id = :branch_id)")
PARAMS = {"start_date": "2026-01-01", "end_date": "2026-12-31", "branch_id": None}


@pytest.fixture(scope="module")
def shop(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("shop") / "shop.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE sales (id INTEGER PRIMARY KEY, day TEXT, branch_id INTEGER, "
                     "customer TEXT, total REAL)")
        conn.executemany("INSERT INTO sales VALUES (?, ?, ?, ?, ?)", (
            (i, f"2026-{1 + i % 12:02d}-{1 + i % 28:02d}", 1 + i % 5,
             f'Customer "{i}", Grocery Lane {i % 977}, Flat {i % 13}', round(i * 0.37, 2))
            for i in range(1, ROWS + 1)))
    return path


def make_app(tmp_path: Path, shop: Path) -> tuple[Conveyor, reports.ReportService]:
    app = Conveyor(f"sqlite:///{tmp_path / 'q.db'}")
    mail.install(app, settings=MailSettings(mailer="file", file_path=tmp_path / "mail"))
    service = reports.install(app, directory=tmp_path / "reports")
    service.register("sales", reports.sql_report(lambda: sqlite3.connect(shop), QUERY,
                                                 count_query=COUNT),
                     params=dict.fromkeys(PARAMS), title="sales")
    return app, service


def expected_csv(shop: Path) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer)
    with sqlite3.connect(shop) as conn:
        cursor = conn.execute(QUERY, PARAMS)
        writer.writerow([d[0] for d in cursor.description])
        writer.writerows(cursor)
    return buffer.getvalue().encode()


def test_report_is_byte_exact_and_emailed(tmp_path: Path, shop: Path) -> None:
    app, service = make_app(tmp_path, shop)
    progress: list[float] = []
    app.on("job_progress", lambda progress_value=None, **kw: progress.append(kw["progress"]))
    service.request("sales", PARAMS, requester="admin@grofresh.test", filename="sales.csv")
    run_until_empty(app)
    produced = (tmp_path / "reports" / "sales.csv").read_bytes()
    assert produced == expected_csv(shop)
    assert produced.count(b"\r\n") == ROWS + 1
    assert progress == sorted(progress) and progress[-1] == 100.0 and len(progress) > 10
    assert [p.name for p in (tmp_path / "reports").iterdir()] == ["sales.csv"]
    (mail_file,) = (tmp_path / "mail").glob("*.eml")
    msg = email.message_from_bytes(mail_file.read_bytes(), policy=email.policy.default)
    assert msg["To"] == "admin@grofresh.test"
    assert msg["Subject"] == "Your sales report is ready"
    (attachment,) = msg.iter_attachments()
    assert attachment.get_filename() == "sales.csv"
    assert attachment.get_payload(decode=True) == produced


def test_memory_stays_bounded(tmp_path: Path, shop: Path) -> None:
    _app, service = make_app(tmp_path, shop)
    tracemalloc.start()
    try:
        result = service.generate("sales", PARAMS, None, "big.csv")
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = (tmp_path / "reports" / "big.csv").stat().st_size
    assert result["rows"] == ROWS and size > 6_000_000
    assert peak < 3_000_000, f"peak {peak} bytes for a {size}-byte report"


def test_failed_report_leaves_no_partial_file(tmp_path: Path, shop: Path) -> None:
    app, service = make_app(tmp_path, shop)

    def broken(params: dict[str, Any]) -> reports.ReportRows:
        def rows() -> Iterator[list[Any]]:
            for i in range(50_000):
                if i == 40_000:
                    raise sqlite3.OperationalError("disk I/O error")
                yield [i, "x" * 50]
        return reports.ReportRows(["id", "filler"], rows())

    service.register("broken", broken)
    job_id = service.request("broken", requester="admin@grofresh.test", filename="b.csv",
                             tries=1)
    run_until_empty(app)
    failed = app.backend.failed_get(job_id)
    assert failed is not None and "disk I/O error" in failed.summary
    assert list((tmp_path / "reports").iterdir()) == []
    assert not (tmp_path / "mail").exists()


def test_bad_requests_fail_at_dispatch(tmp_path: Path, shop: Path) -> None:
    from conveyor import ConfigurationError

    _app, service = make_app(tmp_path, shop)
    with pytest.raises(ConfigurationError, match="unknown report type"):
        service.request("nope")
    with pytest.raises(ConfigurationError, match="unknown parameter"):
        service.request("sales", {"region": 1})
    with pytest.raises(ConfigurationError, match="file name"):
        service.request("sales", filename="../etc/passwd")
