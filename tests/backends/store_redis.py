"""The Redis store in the conformance suite: a key prefix of the test's own on the shared
server (database 9), deleted afterwards. Never FLUSHDB: other sessions share the server."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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


_CLUSTER: list[Any] = []  # one Redis Cluster for the whole test run, started on first use


def _cluster_url() -> str:
    if not _CLUSTER:
        import atexit
        import tempfile

        from tests.integration.redis_processes import RedisCluster

        cluster = RedisCluster(Path(tempfile.mkdtemp(prefix="conveyor-cluster-")))
        atexit.register(cluster.stop)
        cluster.start()
        _CLUSTER.append(cluster)
    return str(_CLUSTER[0].url)


@store("redis-cluster")
@contextmanager
def redis_cluster_store(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A three-primary Redis Cluster of the run's own, through redis-py's Cluster client."""
    import redis.cluster

    url = _cluster_url()
    prefix = f"cvtest:k{os.getpid()}{os.urandom(4).hex()}"
    try:
        yield f"{url}?cluster=1", prefix
    finally:
        client = redis.cluster.RedisCluster.from_url(url)
        for key in list(client.scan_iter(match=f"{prefix}:*", count=1000)):
            client.delete(key)
        client.close()
