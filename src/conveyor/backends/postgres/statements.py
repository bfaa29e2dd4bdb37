"""The store's SQL, read once from ``queries.sql`` and bound to one schema and prefix."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)
#: entries that are CTEs shared by several statements, not statements of their own
_FRAGMENTS = ("claim", "complete", "released", "moved")


@cache
def _raw() -> dict[str, str]:
    text = resources.files(__package__ or "").joinpath("queries.sql").read_text("utf-8")
    parts = _NAME.split(text)
    found: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        lines = [line for line in body.splitlines() if not line.lstrip().startswith("--")]
        found[name] = "\n".join(lines).strip().rstrip(";")
    return found


class Statements:
    """SQL with table names filled in; identifiers come from validated settings only."""

    def __init__(self, schema: str, prefix: str) -> None:
        s = f'"{schema}".{prefix}'
        self.tables = {
            "jobs": f"{s}jobs", "failed": f"{s}failed_jobs", "queues": f"{s}queue_control",
            "control": f"{s}control", "workers": f"{s}workers", "metrics": f"{s}metrics",
            "migrations": f"{s}conveyor_migrations",
        }
        filled = {name: self._fill(body) for name, body in _raw().items()}
        # statements built from shared CTEs: {claim}, {released}, … name another entry
        self._sql = {name: self._compose(body, filled) for name, body in filled.items()}
        self._claims: dict[tuple[str, int], str] = {}

    def _fill(self, body: str) -> str:
        for key, table in self.tables.items():
            body = body.replace("{" + key + "}", table)
        return body

    @staticmethod
    def _compose(body: str, parts: dict[str, str]) -> str:
        for name in _FRAGMENTS:
            body = body.replace("{" + name + "}", parts[name])
        return body

    def __getitem__(self, name: str) -> str:
        return self._sql[name]

    def claim(self, name: str, queue_count: int) -> str:
        """Statement ``name`` (reserve, complete_reserve, ack_reserve) claiming over
        ``queue_count`` queues: one UNION ALL branch per queue, in order (none: the claim
        takes nothing)."""
        sql = self._claims.get((name, queue_count))
        if sql is None:
            branch = self._sql["reserve_branch"]
            branches = " UNION ALL ".join(branch.replace("{rank}", str(rank))
                                          for rank in range(queue_count))
            sql = self._sql[name].replace("{branches}",
                                          branches or "SELECT NULL::text AS id, 0 AS rank")
            self._claims[(name, queue_count)] = sql
        return sql

    def reserve(self, queue_count: int) -> str:
        return self.claim("reserve", queue_count)
