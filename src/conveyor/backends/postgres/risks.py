"""PostgreSQL settings that put jobs at risk: a dispatch that can be lost, or a jobs table
that is never vacuumed. Read by ``PostgresBackend.store_risks()`` (``conveyor health``)."""

from __future__ import annotations

from typing import Any

#: the server-wide values (``reset_val``: what a session starts with, unaffected by the
#: pool's own ``SET synchronous_commit TO off`` for acks)
_SQL = ("SELECT name, reset_val FROM pg_settings "
        "WHERE name IN ('autovacuum', 'fsync', 'synchronous_commit')")


def store_risks(conn: Any, jobs_table: str) -> list[str]:
    """Warnings, each naming the setting to change; empty when the server is safe."""
    settings = {str(name): str(value) for name, value in conn.execute(_SQL).fetchall()}
    risks: list[str] = []
    if settings.get("fsync") == "off":
        risks.append("fsync is off: a server crash can lose or corrupt dispatched jobs. Set "
                     "`fsync = on` in postgresql.conf")
    if settings.get("synchronous_commit") == "off":
        risks.append("synchronous_commit is off server-wide: a dispatch that returned can be "
                     "lost in a server crash (its last fraction of a second). Set "
                     "`synchronous_commit = on` (conveyor's acks skip the wait on their own)")
    if settings.get("autovacuum") == "off":
        risks.append(
            f"autovacuum is off: every claimed and finished job leaves dead rows in "
            f"{jobs_table} that each later claim walks past, so workers slow down as jobs "
            "go through (tenfold within a million jobs). Set `autovacuum = on` in "
            f"postgresql.conf, or run `VACUUM {jobs_table}` every minute")
    return risks
