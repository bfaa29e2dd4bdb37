"""The app ``redis_store_quick.py`` runs: a no-op job and a pickup-latency probe."""

from __future__ import annotations

import os
import time

import redis

from conveyor import Conveyor

app = Conveyor()
_client: redis.Redis | None = None


@app.job(queue="bench")
def noop() -> None:
    """Nothing at all: the drain rate measures conveyor and the store."""


@app.job(queue="bench")
def probe(sent: float) -> None:
    """Record how long the job waited between dispatch and start."""
    global _client
    if _client is None:
        _client = redis.Redis.from_url(os.environ["PROBE_URL"])
    _client.rpush(os.environ["PROBE_KEY"], repr(time.time() - sent))
