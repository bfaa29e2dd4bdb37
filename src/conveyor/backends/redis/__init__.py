"""The Redis store: Lua transitions, strict priorities, leases, Cluster-ready keys."""

from .backend import RedisBackend

__all__ = ["RedisBackend"]
