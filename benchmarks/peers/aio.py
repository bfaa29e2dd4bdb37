"""A private event loop for dispatching from the (synchronous) harness to asyncio peers."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, TypeVar

T = TypeVar("T")


class Loop:
    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()

    def run(self, coroutine: Awaitable[T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def gather(self, coroutines: list[Awaitable[Any]], chunk: int = 500) -> None:
        """Run many enqueues concurrently, ``chunk`` at a time: asyncio peers' bulk form."""
        async def all_chunks() -> None:
            for start in range(0, len(coroutines), chunk):
                await asyncio.gather(*coroutines[start:start + chunk])
        self.run(all_chunks())

    def close(self) -> None:
        self.loop.close()
