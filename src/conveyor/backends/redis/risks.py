"""Redis settings under which a dispatched job can be lost: eviction and no persistence.

Read by ``RedisBackend.store_risks()`` (and, later, ``conveyor health``).
"""

from __future__ import annotations

from typing import Any

from redis.exceptions import ResponseError


def store_risks(client: Any) -> list[str]:
    """Warnings, each naming the exact setting to change; empty when the server is safe."""
    risks: list[str] = []
    try:
        policy = str(client.config_get("maxmemory-policy").get("maxmemory-policy", ""))
        save = str(client.config_get("save").get("save", ""))
    except ResponseError:
        # managed services often disable CONFIG; INFO still tells persistence
        policy, save = "", "?"
        risks.append("cannot read the Redis configuration (CONFIG GET is disabled): make "
                     "sure maxmemory-policy is noeviction and AOF or RDB persistence is on")
    if policy and policy != "noeviction":
        risks.append(
            f"maxmemory-policy is {policy!r}: Redis may evict job keys when memory is full. "
            "Set `maxmemory-policy noeviction` (redis.conf, or CONFIG SET maxmemory-policy "
            "noeviction)"
        )
    persistence = client.info("persistence")
    aof = int(persistence.get("aof_enabled", 0)) == 1
    if not aof and save.strip() == "":
        risks.append(
            "persistence is off (appendonly no and no RDB save points): every job is lost "
            "when Redis restarts. Set `appendonly yes` (redis.conf, or CONFIG SET appendonly "
            "yes), or at least `save 60 1000`"
        )
    elif not aof:
        risks.append(
            "appendonly is off: jobs dispatched since the last RDB snapshot "
            f"(save {save!r}) are lost if Redis crashes. Set `appendonly yes` with "
            "`appendfsync everysec` for at most one second of loss"
        )
    return risks
