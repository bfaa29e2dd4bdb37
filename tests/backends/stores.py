"""The stores the conformance suite runs against. Each store module adds a factory that
yields a URL and a table prefix of the test's own (so tests never see each other's rows).

A factory skips (or fails under CI=true) when its server is absent.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

StoreFactory = Callable[[Path], AbstractContextManager[tuple[str, str]]]
STORES: dict[str, StoreFactory] = {}


def store(name: str) -> Callable[[StoreFactory], StoreFactory]:
    def register(factory: StoreFactory) -> StoreFactory:
        STORES[name] = factory
        return factory

    return register


@store("sqlite")
@contextmanager
def sqlite_store(tmp_path: Path) -> Iterator[tuple[str, str]]:
    yield f"sqlite:///{tmp_path / 'conformance.db'}", ""


def _load_optional() -> None:
    """Store modules register themselves when present (tests/backends/store_*.py)."""
    import importlib
    import pkgutil

    package = Path(__file__).parent
    for info in pkgutil.iter_modules([str(package)]):
        if info.name.startswith("store_"):
            importlib.import_module(f"tests.backends.{info.name}")


_load_optional()
