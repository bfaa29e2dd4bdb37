"""Named SQL statements kept in a file next to a store: ``-- name: x`` starts statement x;
other ``--`` lines are comments. Placeholders such as ``{p}`` are filled by the store."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_NAME = re.compile(r"^-- name: ([a-z_]+)\s*$", re.MULTILINE)


@cache
def named_statements(package: str, filename: str) -> dict[str, str]:
    text = resources.files(package).joinpath(filename).read_text("utf-8")
    parts = _NAME.split(text)
    return {name: "\n".join(line for line in body.splitlines()
                            if not line.lstrip().startswith("--")).strip().rstrip(";")
            for name, body in zip(parts[1::2], parts[2::2], strict=True)}
