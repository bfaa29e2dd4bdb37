"""The named statements of ``queries.sql``, with the table prefix applied once.

Identifiers come only from validated settings (database name, table prefix); row values
always travel as ``%s`` parameters. ``{in}``/``{pairs}``/``{queues}`` expand to as many
placeholders as there are values.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import TypeVar

T = TypeVar("T")

CHUNK = 1000  # rows per IN (…) list: well under max_allowed_packet, short lock hold


def load_queries(qualified_prefix: str) -> dict[str, str]:
    text = resources.files(__package__ or "").joinpath("queries.sql").read_text("utf-8")
    queries: dict[str, str] = {}
    name = ""
    lines: list[str] = []
    for line in [*text.splitlines(), "-- name: "]:
        if line.startswith("-- name: "):
            if name:
                queries[name] = "\n".join(lines).strip().replace("{p}", qualified_prefix)
            name, lines = line[len("-- name: "):].strip(), []
        elif not line.lstrip().startswith("--"):
            lines.append(line)
    return queries


def placeholders(n: int) -> str:
    return ", ".join(["%s"] * n)


def expand(sql: str, *, ids: int = 0, pairs: int = 0, queues: int = 0) -> str:
    """Fill the list markers of ``sql`` for ``ids`` values, ``pairs`` pairs, ``queues`` rows."""
    if ids:
        sql = sql.replace("{in}", placeholders(ids))
    if pairs:
        sql = sql.replace("{pairs}", ", ".join(["(%s, %s)"] * pairs))
    if queues:
        rows = ["SELECT %s AS pos, %s AS queue"] + ["SELECT %s, %s"] * (queues - 1)
        sql = sql.replace("{queues}", " UNION ALL ".join(rows))
    return sql


def chunks(items: Sequence[T], size: int = CHUNK) -> list[list[T]]:
    return [list(items[i:i + size]) for i in range(0, len(items), size)]
