"""Numbered SQL migration files shared by the SQL stores: ``NNNN_name.sql`` in a package."""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(sql: str) -> list[str]:
    """Split on semicolons that end a line; ``--`` comment lines are dropped."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    text = "\n".join(lines)
    return [part.strip() for part in re.split(r";\s*\n", text + "\n") if part.strip()]


def load_migrations(package: str, prefix: str) -> list[Migration]:
    """The migrations of ``package``'s ``migrations`` folder, in order, prefix applied."""
    folder = resources.files(package).joinpath("migrations")
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if not match:
            continue
        sql = entry.read_text(encoding="utf-8").replace("{p}", prefix)
        found.append(Migration(int(match.group(1)), match.group(2), tuple(split_statements(sql))))
    found.sort(key=lambda m: m.version)
    return found
