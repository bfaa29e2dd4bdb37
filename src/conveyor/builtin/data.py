"""``ProcessDataJob``: registered data operations run as jobs.

    from conveyor.builtin import data
    ops = data.install(app)
    ops.register("bulk_product_update",
                 data.bulk_update(connect, "products", columns=("price", "stock")))
    ops.run("bulk_product_update", rows, {"batch_size": 500})

Built-in operation builders: ``bulk_update`` (batches, one transaction each; a failing
batch rolls back alone and is reported by row numbers), ``warm_cache`` (values computed
and stored with a TTL in Redis or SQLite) and ``rebuild`` (delete-then-insert aggregates in
one transaction: idempotent, e.g. analytics).
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError, Fail
from ..jobs import JobDefinition
from .cache import Cache
from .common import installed, progress, register

if TYPE_CHECKING:
    from ..app import Conveyor

__all__ = ["JOB_NAME", "DataService", "bulk_update", "install", "rebuild", "service",
           "warm_cache"]

KEY = "conveyor.data"
JOB_NAME = "conveyor.process_data"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")
log = logging.getLogger("conveyor.data")

Operation = Callable[[Any, dict[str, Any]], dict[str, Any]]


class DataService:
    """The installed data job of one app: its registry of operations."""

    def __init__(self, app: Conveyor) -> None:
        self.app = app
        self.operations: dict[str, Operation] = {}

        def process_data(operation: str, data: Any = None,
                         options: dict[str, Any] | None = None) -> dict[str, Any]:
            """Run one registered data operation."""
            return self.execute(operation, data, options)

        self.job: JobDefinition[..., dict[str, Any]] = app.job(
            name=JOB_NAME, queue="data", tries=3, timeout=1800)(process_data)

    def register(self, name: str, operation: Operation) -> None:
        if name in self.operations:
            raise ConfigurationError(f"data operation {name!r} is registered twice")
        self.operations[name] = operation

    def run(self, operation: str, data: Any = None, options: Mapping[str, Any] | None = None,
            **dispatch_options: Any) -> str:
        """Dispatch an operation; returns the job id."""
        if operation not in self.operations:
            raise ConfigurationError(self._unknown(operation))
        job = self.job.options(**dispatch_options) if dispatch_options else self.job
        return job.dispatch(operation, data, dict(options or {}))

    def _unknown(self, operation: str) -> str:
        return (f"unknown data operation {operation!r}; registered: "
                f"{', '.join(sorted(self.operations)) or 'none'}")

    def execute(self, operation: str, data: Any, options: dict[str, Any] | None
                ) -> dict[str, Any]:
        func = self.operations.get(operation)
        if func is None:
            raise Fail(self._unknown(operation))
        result = func(data, dict(options or {}))
        log.info("data %s: %s", operation, result)
        return result


def _identifier(name: str) -> str:
    if not IDENTIFIER.match(name):
        raise ConfigurationError(f"{name!r} is not a plain SQL identifier (letters, digits, _)")
    return name


def _placeholder(conn: Any) -> str:
    """``?`` for qmark drivers (sqlite3), ``%s`` for format/pyformat (psycopg, PyMySQL)."""
    module = sys.modules.get(type(conn).__module__.split(".")[0])
    return "?" if getattr(module, "paramstyle", "qmark") == "qmark" else "%s"


class RowError(Exception):
    def __init__(self, number: int, message: str) -> None:
        super().__init__(f"row {number}: {message}")


def bulk_update(connect: Callable[[], Any], table: str, *, key: str = "id",
                columns: Iterable[str], validate: Callable[[Mapping[str, Any]], None] | None
                = None) -> Operation:
    """Update ``table`` rows by ``key`` from a list of dicts, in batches.

    Options: ``batch_size`` (default 100), ``on_batch_error``: ``report`` (default; the
    job completes and its result lists failed batches) or ``fail`` (the job ends in the
    failed store once every batch was tried; applied batches stay applied).
    Table and column names are fixed here, never taken from a payload.
    """
    table, key = _identifier(table), _identifier(key)
    allowed = frozenset(_identifier(c) for c in columns)

    def operation(rows: Any, options: dict[str, Any]) -> dict[str, Any]:
        if not isinstance(rows, list):
            raise Fail("bulk_update expects a list of rows (objects)")
        batch_size = options.get("batch_size", 100)
        on_error = options.get("on_batch_error", "report")
        if not isinstance(batch_size, int) or batch_size < 1 or on_error not in ("report",
                                                                                 "fail"):
            raise Fail("options: batch_size must be an integer >= 1 and on_batch_error "
                       "report or fail")
        conn = connect()
        mark = _placeholder(conn)
        counts = {"applied": 0, "skipped": 0, "failed": 0}
        failures: list[dict[str, Any]] = []
        try:
            for start in range(0, len(rows), batch_size):
                batch = rows[start:start + batch_size]
                try:
                    applied, skipped = _apply_batch(conn, mark, table, key, allowed, validate,
                                                    batch, start)
                    conn.commit()
                except Exception as exc:
                    conn.rollback()
                    counts["failed"] += len(batch)
                    failures.append({"rows": [start + 1, start + len(batch)],
                                     "error": str(exc)})
                    log.warning("%s: batch of rows %d-%d rolled back: %s", table, start + 1,
                                start + len(batch), exc)
                else:
                    counts["applied"] += applied
                    counts["skipped"] += skipped
                progress(100.0 * min(len(rows), start + batch_size) / max(1, len(rows)),
                         f"{start + len(batch)} of {len(rows)} rows")
        finally:
            conn.close()
        result: dict[str, Any] = {**counts, "failed_batches": failures}
        if failures and on_error == "fail":
            raise Fail(f"{len(failures)} batch(es) rolled back ("
                       + "; ".join(f"rows {f['rows'][0]}-{f['rows'][1]}: {f['error']}"
                                   for f in failures[:5])
                       + f"); applied {counts['applied']}, skipped {counts['skipped']}, "
                       f"failed {counts['failed']}")
        return result

    return operation


def _apply_batch(conn: Any, mark: str, table: str, key: str, allowed: frozenset[str],
                 validate: Callable[[Mapping[str, Any]], None] | None,
                 batch: Sequence[Any], start: int) -> tuple[int, int]:
    applied = skipped = 0
    cursor = conn.cursor()
    for offset, row in enumerate(batch):
        number = start + offset + 1
        if not isinstance(row, dict) or key not in row:
            raise RowError(number, f"expected an object with {key!r}")
        changes = {c: v for c, v in row.items() if c != key}
        unknown = set(changes) - allowed
        if unknown:
            raise RowError(number, f"column(s) {sorted(unknown)} may not be updated")
        if not changes:
            skipped += 1
            continue
        try:
            if validate is not None:
                validate(row)
            assignments = ", ".join(f"{c} = {mark}" for c in changes)
            cursor.execute(f"UPDATE {table} SET {assignments} WHERE {key} = {mark}",  # noqa: S608 - identifiers validated at registration
                           [*changes.values(), row[key]])
        except Exception as exc:
            raise RowError(number, f"{type(exc).__name__}: {exc}") from exc
        if cursor.rowcount:
            applied += 1
        else:
            skipped += 1  # no such row
    return applied, skipped


def warm_cache(cache: Cache | Callable[[], Cache],
               warmers: Mapping[str, Callable[[], Mapping[str, Any]]]) -> Operation:
    """Compute values with the named ``warmers`` and store them with ``ttl`` (option,
    seconds, default 3600). The payload lists warmer names; empty means all."""

    def operation(names: Any, options: dict[str, Any]) -> dict[str, Any]:
        chosen = list(names or warmers)
        unknown = [n for n in chosen if n not in warmers]
        if unknown:
            raise Fail(f"unknown cache warmer(s) {unknown}; registered: {sorted(warmers)}")
        ttl = float(options.get("ttl", 3600))
        target = cache() if callable(cache) else cache
        keys = 0
        for index, name in enumerate(chosen, 1):
            values = warmers[name]()
            target.set_many(values, ttl)
            keys += len(values)
            progress(100.0 * index / len(chosen), name)
        return {"warmed": chosen, "keys": keys, "ttl": ttl}

    return operation


def rebuild(connect: Callable[[], Any], statements: Sequence[str],
            count_query: str | None = None) -> Operation:
    """Run ``statements`` (e.g. DELETE a range, then INSERT … SELECT its aggregates) in one
    transaction with the payload's parameters: re-running gives identical tables."""

    def operation(params: Any, options: dict[str, Any]) -> dict[str, Any]:
        params = dict(params or {})
        conn = connect()
        try:
            cursor = conn.cursor()
            for statement in statements:
                cursor.execute(statement, params)
            rows = None
            if count_query is not None:
                cursor.execute(count_query, params)
                rows = int(cursor.fetchone()[0])
            conn.commit()
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
        return {"rows": rows, "params": params}

    return operation


def install(app: Conveyor) -> DataService:
    """Register ``conveyor.process_data`` on ``app`` and return its service."""
    return register(app, KEY, lambda: DataService(app))


def service(app: Conveyor) -> DataService:
    """The data service installed on ``app``."""
    result: DataService = installed(app, KEY, "conveyor.builtin.data.install(app)")
    return result
