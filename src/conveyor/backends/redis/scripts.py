"""The Lua scripts, each one atomic state transition, loaded once and run by EVALSHA.

``_lib.lua`` is prepended to each script so they share key naming and two helpers; the
fragments a script is built on (``_complete.lua``, ``_reserve.lua``) come after it.
redis-py's ``Script`` reloads a script by itself after ``SCRIPT FLUSH`` or a restart.
"""

from __future__ import annotations

from collections.abc import Sequence
from importlib import resources
from typing import Any

from redis import Redis
from redis.commands.core import Script

from .keys import Keys

NAMES = ("insert", "reserve", "complete", "complete_reserve", "wait_reserve", "release", "fail",
         "extend", "recover", "clear", "failed_retry", "failed_forget", "failed_flush",
         "metrics_prune")

#: the fragments (functions) a script uses besides _lib.lua
_FRAGMENTS = {"complete": ("_complete",), "reserve": ("_reserve",),
              "complete_reserve": ("_complete", "_reserve"), "wait_reserve": ("_reserve",)}


def _source(name: str) -> str:
    folder = resources.files(__package__ or "conveyor.backends.redis")
    parts = ("_lib", *_FRAGMENTS.get(name, ()), name)
    return "\n".join((folder / f"{part}.lua").read_text() for part in parts)


class Scripts:
    """``scripts.run("reserve", queues, *args)`` for the queues one call covers."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self.keys = keys
        self._scripts: dict[str, Script] = {
            name: client.register_script(_source(name)) for name in NAMES
        }

    def run(self, name: str, queues: Sequence[str], *args: Any) -> Any:
        return self._scripts[name](keys=self.keys_of(queues),
                                   args=(self.keys.prefix, len(queues), *queues, *args))

    def keys_of(self, queues: Sequence[str]) -> list[str]:
        """A call's KEYS: each queue's wait key (they route a Cluster call to its slot)."""
        return [self.keys.queue(q, "wait") for q in queues] or [self.keys.metrics]

    def sha(self, name: str) -> str:
        return str(self._scripts[name].sha)

    def load_all(self, client: Redis) -> None:
        for script in self._scripts.values():
            script.sha = client.script_load(script.script)
