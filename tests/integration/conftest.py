from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conveyor import Conveyor
from conveyor.backends import open_backend
from tests.backends.stores import STORES

from .monitoring_store import Clock

AppFactory = Callable[..., Conveyor]


@pytest.fixture
def clock() -> Clock:
    """The app's injectable clock, fixed at ``monitoring_store.NOW`` until a test moves it."""
    return Clock()


@pytest.fixture(params=sorted(STORES))
def make_app(request: pytest.FixtureRequest, tmp_path: Path,
             clock: Clock) -> Iterator[AppFactory]:
    """Apps on each store of the conformance suite (its own database/prefix), on ``clock``."""
    apps: list[Conveyor] = []
    with STORES[request.param](tmp_path) as (url, prefix):
        def make(**overrides: Any) -> Conveyor:
            app = Conveyor(url, clock=clock, **overrides)
            # a store factory's prefix may be a Redis key prefix ("t:abc"), which the
            # table_prefix setting does not accept: hand the app its store directly
            app._backend = open_backend(url, table_prefix=prefix)
            app.backend.migrate()
            apps.append(app)
            return app

        yield make
        for app in apps:
            app.close()


@pytest.fixture
def app(make_app: AppFactory) -> Conveyor:
    return make_app()
