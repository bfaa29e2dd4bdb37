from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .stores import CHAOS_STORES, PROXIED_STORES, ChaosTarget


@pytest.fixture(params=sorted(CHAOS_STORES))
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChaosTarget]:
    with CHAOS_STORES[request.param](tmp_path) as chaos_target:
        yield chaos_target


@pytest.fixture(params=sorted(PROXIED_STORES))
def proxied(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ChaosTarget]:
    """A server store that workers reach through a FaultProxy (``target.proxy``)."""
    with PROXIED_STORES[request.param](tmp_path) as chaos_target:
        yield chaos_target
