"""A small key-value cache with TTL for ``warm_cache``: Redis when configured, else SQLite.

Values are JSON. ``open_cache("redis://host:6379/2")`` or ``open_cache("sqlite:///cache.db")``;
``CONVEYOR_CACHE_URL`` names it from settings.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Protocol

from ..errors import ConfigurationError


class Cache(Protocol):
    def set_many(self, values: Mapping[str, Any], ttl: float) -> None: ...

    def get(self, key: str) -> Any: ...

    def close(self) -> None: ...


class SqliteCache:
    """One table ``cache(key, value, expires_at)``; expired rows read as missing."""

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.clock = clock
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, check_same_thread=False, timeout=30)
        with self._lock, self._conn:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("CREATE TABLE IF NOT EXISTS cache (key TEXT PRIMARY KEY, "
                               "value TEXT NOT NULL, expires_at REAL NOT NULL)")

    def set_many(self, values: Mapping[str, Any], ttl: float) -> None:
        expires = self.clock() + ttl
        rows = [(k, json.dumps(v), expires) for k, v in values.items()]
        with self._lock, self._conn:
            self._conn.executemany(
                "INSERT INTO cache (key, value, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value, "
                "expires_at = excluded.expires_at", rows)
            self._conn.execute("DELETE FROM cache WHERE expires_at <= ?", (self.clock(),))

    def get(self, key: str) -> Any:
        with self._lock:
            row = self._conn.execute("SELECT value FROM cache WHERE key = ? AND expires_at > ?",
                                     (key, self.clock())).fetchone()
        return None if row is None else json.loads(row[0])

    def close(self) -> None:
        self._conn.close()


class RedisCache:
    """``SET key value EX ttl`` in one pipeline per warm-up; keys take a prefix."""

    def __init__(self, url: str, prefix: str = "conveyor:cache:") -> None:
        try:
            import redis
        except ImportError:
            raise ConfigurationError(
                "a Redis cache needs the redis package: pip install 'conveyor[redis]'") from None
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def set_many(self, values: Mapping[str, Any], ttl: float) -> None:
        pipe = self.client.pipeline(transaction=False)
        for key, value in values.items():
            pipe.set(self.prefix + key, json.dumps(value), px=max(1, int(ttl * 1000)))
        pipe.execute()

    def get(self, key: str) -> Any:
        raw = self.client.get(self.prefix + key)
        return None if raw is None else json.loads(raw)

    def close(self) -> None:
        self.client.close()


def open_cache(url: str) -> SqliteCache | RedisCache:
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisCache(url)
    if url.startswith("sqlite:///"):
        return SqliteCache(url[len("sqlite:///"):])
    raise ConfigurationError(
        f"setting CONVEYOR_CACHE_URL={url!r} is not valid: expected redis://host:port/db "
        "or sqlite:///path/cache.db")


def cache_url_from_env(env: Mapping[str, str], default_path: str | Path) -> str:
    """``CONVEYOR_CACHE_URL`` when set (Redis or SQLite), else a SQLite file."""
    return env.get("CONVEYOR_CACHE_URL") or f"sqlite:///{default_path}"
