"""The Redis store in the conformance suite: a key prefix of the test's own on the shared
server (database 9), deleted afterwards. Never FLUSHDB: other sessions share the server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.conftest import require_server

from .stores import store

REDIS_HOST, REDIS_PORT, REDIS_DB = "127.0.0.1", 6379, 9


def delete_prefix(url: str, prefix: str) -> None:
    """Delete every key under ``prefix`` (SCAN, never FLUSHDB)."""
    import redis

    client = redis.Redis.from_url(url)
    try:
        batch: list[bytes] = []
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                client.delete(*batch)
                batch = []
        if batch:
            client.delete(*batch)
    finally:
        client.close()


@contextmanager
def redis_prefix(tag: str = "t") -> Iterator[tuple[str, str]]:
    """A Redis URL and a unique key prefix; the prefix's keys are deleted afterwards."""
    require_server("Redis", REDIS_HOST, REDIS_PORT)
    url = f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}"
    prefix = f"cvtest:{tag}{os.getpid()}{os.urandom(4).hex()}"
    try:
        yield url, prefix
    finally:
        delete_prefix(url, prefix)


@store("redis")
@contextmanager
def redis_store(tmp_path: Path) -> Iterator[tuple[str, str]]:
    with redis_prefix("c") as (url, prefix):
        yield url, prefix


@store("redis-single-slot")
@contextmanager
def redis_single_slot_store(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """The same store making one script call per queue, as Redis Cluster requires."""
    with redis_prefix("s") as (url, prefix):
        yield f"{url}?single_slot=1", prefix
