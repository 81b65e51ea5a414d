"""One lock per user, so a user's messages reach the queue in the order Discord delivered them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class UserLocks:
    """discord.py handles each message in its own task; without this, one user's quick messages
    race for Redis connections and can be enqueued out of order.

    asyncio.Lock wakes waiters first-in first-out. An entry is dropped when its last holder or
    waiter leaves (counted, because `locked()` reads False while a woken waiter has not yet run).
    """

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def hold(self, user_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(user_id, (asyncio.Lock(), 0))
        self._locks[user_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[user_id]
            if users == 1:
                del self._locks[user_id]
            else:
                self._locks[user_id] = (lock, users - 1)

    def __len__(self) -> int:
        return len(self._locks)
