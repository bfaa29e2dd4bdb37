"""A test app whose jobs write what they did into a Redis "ledger", so a test can count
runs across worker processes: ``python -m conveyor --app tests.apps.ledger:app work …``.

LEDGER_URL names the Redis server (and database) and LEDGER_KEY the key prefix.
"""

from __future__ import annotations

import os
import time

import redis

from conveyor import Conveyor

app = Conveyor()
_client: redis.Redis | None = None


def ledger() -> tuple[redis.Redis, str]:
    global _client  # one connection pool per worker process, made on first use
    if _client is None:
        _client = redis.Redis.from_url(os.environ["LEDGER_URL"], decode_responses=True)
    return _client, os.environ["LEDGER_KEY"]


@app.job(queue="default")
def record(n: int, pause: float = 0.0) -> None:
    """Count one run of job ``n`` (HINCRBY: a second run shows as 2)."""
    if pause:
        time.sleep(pause)
    client, key = ledger()
    client.hincrby(f"{key}:runs", str(n), 1)


@app.job(queue="default")
def trace(label: str, pause: float = 0.0) -> None:
    """Append ``label`` to the order in which jobs started."""
    client, key = ledger()
    if pause:
        time.sleep(pause)
    client.rpush(f"{key}:order", label)
