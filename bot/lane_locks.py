"""One lock per lane (a user, or a shared thread), so a lane's messages reach the queue in the order Discord
delivered them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class LaneLocks:
    """discord.py handles each message in its own task; without this, quick messages of one lane (one user's,
    or several people's in a shared thread) race for Redis connections and can be enqueued out of order.

    asyncio.Lock wakes waiters first-in first-out. An entry is dropped when its last holder or
    waiter leaves (counted, because `locked()` reads False while a woken waiter has not yet run).
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, lane: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(lane, (asyncio.Lock(), 0))
        self._locks[lane] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[lane]
            if users == 1:
                del self._locks[lane]
            else:
                self._locks[lane] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
