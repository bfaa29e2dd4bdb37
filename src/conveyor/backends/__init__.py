"""Store implementations, chosen by URL scheme and imported only when used."""

from __future__ import annotations

import importlib

from ..errors import ConfigurationError
from .base import Backend, Capabilities, redact_url

# scheme -> (module, class, extra to install)
_REGISTRY: dict[str, tuple[str, str, str]] = {
    "sqlite": ("conveyor.backends.sqlite", "SQLiteBackend", ""),
    "postgres": ("conveyor.backends.postgres", "PostgresBackend", "postgres"),
    "postgresql": ("conveyor.backends.postgres", "PostgresBackend", "postgres"),
    "redis": ("conveyor.backends.redis", "RedisBackend", "redis"),
    "rediss": ("conveyor.backends.redis", "RedisBackend", "redis"),
    "mysql": ("conveyor.backends.mysql", "MySQLBackend", "mysql"),
    "mariadb": ("conveyor.backends.mysql", "MySQLBackend", "mysql"),
}


def open_backend(url: str, *, table_prefix: str = "") -> Backend:
    """The backend for ``url``; a clear error for unknown schemes or missing extras."""
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    entry = _REGISTRY.get(scheme)
    if entry is None:
        raise ConfigurationError(
            f"unknown store URL {redact_url(url)!r}: accepted schemes are "
            + ", ".join(sorted(_REGISTRY))
        )
    module_name, class_name, extra = entry
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and exc.name.startswith("conveyor"):
            raise ConfigurationError(
                f"the {scheme} store is not available in this version of conveyor"
            ) from exc
        raise ConfigurationError(
            f"the {scheme} store needs the {exc.name!r} package: pip install 'conveyor[{extra}]'"
        ) from exc
    backend_class: type[Backend] = getattr(module, class_name)
    return backend_class(url, table_prefix=table_prefix)


__all__ = ["Backend", "Capabilities", "open_backend", "redact_url"]
