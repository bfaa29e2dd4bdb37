"""``GenerateReportJob``: registered report types streamed to CSV, written atomically.

    from conveyor.builtin import reports
    rep = reports.install(app, directory="reports")        # emails via the email service
    rep.register("sales", reports.sql_report(connect, "SELECT … WHERE day >= :start_date",
                                             count_query="SELECT COUNT(*) …"),
                 params={"start_date": None, "end_date": None, "branch_id": None})
    rep.request("sales", {"start_date": "2026-11-01"}, requester="admin@grofresh.test")

Rows are streamed (constant memory whatever the size) into a temporary file next to the
target, which is renamed into place only when complete: a failed report leaves no file.
"""

from __future__ import annotations

import csv
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..context import current_job
from ..errors import ConfigurationError, ConveyorError, Fail
from ..jobs import JobDefinition
from .common import installed, progress, register

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["JOB_NAME", "ReportRows", "ReportService", "ReportType", "install", "service",
           "sql_report"]

KEY = "conveyor.reports"
JOB_NAME = "conveyor.generate_report"
FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")
log = logging.getLogger("conveyor.reports")


@dataclass(slots=True)
class ReportRows:
    """A report's header and rows (any iterable: a generator keeps memory constant);
    ``total`` (when known) turns progress into a percentage."""

    columns: Sequence[str]
    rows: Iterable[Sequence[Any]]
    total: int | None = None


ReportSource = Callable[[dict[str, Any]], ReportRows]


@dataclass(slots=True)
class ReportType:
    name: str
    source: ReportSource
    params: dict[str, Any] = field(default_factory=dict)
    title: str = ""

    def bind(self, given: Mapping[str, Any] | None) -> dict[str, Any]:
        given = dict(given or {})
        unknown = set(given) - set(self.params)
        if unknown:
            raise ConfigurationError(
                f"report {self.name!r}: unknown parameter(s) {', '.join(sorted(unknown))}; "
                f"accepted: {', '.join(sorted(self.params)) or 'none'}")
        return {**self.params, **given}


def sql_report(connect: Callable[[], Any], query: str, *, count_query: str | None = None,
               fetch_size: int = 2000) -> ReportSource:
    """A report from a parameterised query (in the driver's paramstyle, e.g. ``:name`` for
    sqlite3), fetched ``fetch_size`` rows at a time; column names from the cursor."""

    def source(params: dict[str, Any]) -> ReportRows:
        conn = connect()
        try:
            total = None
            if count_query is not None:
                counter = conn.cursor()
                counter.execute(count_query, params)
                total = int(counter.fetchone()[0])
            cursor = conn.cursor()
            cursor.execute(query, params)
            columns = [d[0] for d in cursor.description]
        except BaseException:
            conn.close()
            raise

        def rows() -> Iterator[Sequence[Any]]:
            try:
                while batch := cursor.fetchmany(fetch_size):
                    yield from batch
            finally:
                conn.close()

        return ReportRows(columns, rows(), total)

    return source


class ReportService:
    """The installed report job of one app: the registry of report types and where files go."""

    def __init__(self, app: Conveyor, directory: Path, attach_limit: int,
                 link_base: str | None) -> None:
        self.app = app
        self.directory = directory
        self.attach_limit = attach_limit
        self.link_base = link_base
        self.types: dict[str, ReportType] = {}

        def generate_report(report: str, params: dict[str, Any] | None = None,
                            requester: str | None = None,
                            filename: str | None = None) -> dict[str, Any]:
            """Build one report file and tell the requester."""
            return self.generate(report, params, requester, filename)

        self.job: JobDefinition[..., dict[str, Any]] = app.job(
            name=JOB_NAME, queue="reports", tries=3, timeout=3600)(generate_report)

    def register(self, name: str, source: ReportSource, *,
                 params: Mapping[str, Any] | Iterable[str] = (), title: str = "") -> None:
        """Add a report type; ``params`` names the accepted parameters (with defaults)."""
        if name in self.types:
            raise ConfigurationError(f"report type {name!r} is registered twice")
        defaults = dict(params) if isinstance(params, Mapping) else dict.fromkeys(params)
        self.types[name] = ReportType(name, source, defaults, title or name)

    def request(self, report: str, params: Mapping[str, Any] | None = None,
                requester: str | None = None, filename: str | None = None,
                **options: Any) -> str:
        """Dispatch a report; returns the job id. Bad names and parameters fail here."""
        self._type(report, ConfigurationError).bind(params)
        if filename is not None:
            self._check_filename(filename, ConfigurationError)
        job = self.job.options(**options) if options else self.job
        return job.dispatch(report, dict(params or {}), requester, filename)

    def _type(self, name: str, error: type[Exception]) -> ReportType:
        try:
            return self.types[name]
        except KeyError:
            raise error(f"unknown report type {name!r}; registered: "
                        f"{', '.join(sorted(self.types)) or 'none'}") from None

    @staticmethod
    def _check_filename(name: str, error: type[Exception]) -> None:
        if not FILENAME.match(name) or ".." in name:
            raise error(f"report file name {name!r}: use letters, digits, _ . - only")

    # -- the worker's side --------------------------------------------------------------
    def generate(self, report: str, params: dict[str, Any] | None, requester: str | None,
                 filename: str | None) -> dict[str, Any]:
        kind = self._type(report, Fail)
        try:
            values = kind.bind(params)
        except ConfigurationError as exc:
            raise Fail(str(exc)) from None
        if filename is None:
            try:
                suffix = current_job().id
            except ConveyorError:
                suffix = time.strftime("%Y%m%d-%H%M%S")
            filename = f"{report}-{suffix}.csv"
        self._check_filename(filename, Fail)
        target = self.directory / filename
        started = time.monotonic()
        rows = self.write_csv(kind.source(values), target)
        size = target.stat().st_size
        log.info("report %s: %d rows, %d bytes in %.2fs -> %s", report, rows, size,
                 time.monotonic() - started, target)
        result = {"report": report, "path": str(target), "rows": rows, "bytes": size}
        if requester:
            result["emailed"] = self._notify(kind, target, rows, size, requester)
        return result

    def write_csv(self, data: ReportRows, target: Path) -> int:
        """Stream ``data`` into ``target`` atomically; returns the number of rows."""
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.",
                                   suffix=".part")
        count = 0
        try:
            with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(data.columns)
                step = max(1, (data.total or 0) // 100) if data.total else 10_000
                for row in data.rows:
                    writer.writerow(row)
                    count += 1
                    if count % step == 0:
                        progress(min(99.0, 100.0 * count / data.total) if data.total else 0.0,
                                 f"{count} rows")
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        progress(100.0, f"{count} rows")
        return count

    def _notify(self, kind: ReportType, path: Path, rows: int, size: int,
                requester: str) -> bool:
        from . import email

        mail = self.app.extensions.get(email.KEY)
        if mail is None:
            log.warning("report %s is ready but email is not installed: %s not told",
                        kind.name, requester)
            return False
        attach = size <= self.attach_limit
        where = (f"{self.link_base.rstrip('/')}/{path.name}" if self.link_base else str(path))
        text = (f"Your {kind.title} report is ready: {rows} rows.\n"
                + ("The file is attached.\n" if attach else f"Download it from {where}\n"))
        mail.send(email.Mailable(
            subject=f"Your {kind.title} report is ready", to=[requester], text=text,
            attachments=[email.Attachment(path.name, path=str(path), mimetype="text/csv")]
            if attach else []), type="report_ready")
        return True


def install(app: Conveyor, *, directory: str | Path = "reports",
            attach_limit: int = 10 * 1024 * 1024, link_base: str | None = None
            ) -> ReportService:
    """Register ``conveyor.generate_report``; files go to ``directory``. Reports up to
    ``attach_limit`` bytes are attached to the requester's email, larger ones linked
    (``link_base`` + file name, or the path)."""
    return register(app, KEY, lambda: ReportService(app, Path(directory), attach_limit,
                                                        link_base))


def service(app: Conveyor) -> ReportService:
    """The report service installed on ``app``."""
    result: ReportService = installed(app, KEY, "conveyor.builtin.reports.install(app)")
    return result
