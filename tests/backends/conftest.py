from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from conveyor.backends import Backend, open_backend

from .stores import STORES


@pytest.fixture(params=sorted(STORES))
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    with STORES[request.param](tmp_path) as (url, prefix):
        yield url, prefix


@pytest.fixture
def backend(store_url: tuple[str, str]) -> Iterator[Backend]:
    url, prefix = store_url
    b = open_backend(url, table_prefix=prefix)
    b.migrate()
    yield b
    b.close()


@pytest.fixture
def other_backend(store_url: tuple[str, str]) -> Iterator[Backend]:
    """A second client of the same store, as another process or host would have."""
    url, prefix = store_url
    b = open_backend(url, table_prefix=prefix)
    yield b
    b.close()
