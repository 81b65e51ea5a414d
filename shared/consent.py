"""Who has opted in, and erasing what is stored about a user."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.keys import Keys
from shared.scripts import Scripts


class ConsentRegistry:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts.register(redis)

    async def opt_in(self, user_id: str) -> bool:
        """True if the user was not opted in before."""
        return bool(await self._redis.sadd(self._keys.optin, user_id))

    async def is_opted_in(self, user_id: str) -> bool:
        return bool(await self._redis.sismember(self._keys.optin, user_id))

    async def opt_out(self, user_id: str) -> bool:
        """Erases every key and list entry about the user; True if they had opted in."""
        k = self._keys
        was_in = await self._scripts.optout(
            keys=[k.optin, *k.user_keys(user_id), k.query, k.response, k.dead],
            args=[user_id],
        )
        return bool(was_in)

    async def forget(self, user_id: str) -> bool:
        """Erases the user's conversation history; True if there was any."""
        return bool(await self._redis.delete(self._keys.history(user_id)))
