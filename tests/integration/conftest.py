from __future__ import annotations

import pytest

from .monitoring_store import Clock


@pytest.fixture
def clock() -> Clock:
    """The app's injectable clock, fixed at ``monitoring_store.NOW`` until a test moves it."""
    return Clock()
