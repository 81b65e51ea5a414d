"""A server's allow-list (of channels, or of roles): entries `<prefix><id>` in its settings hash (server:{guild}) and
a count field that says whether the list is on, changed together by one script each."""

from __future__ import annotations

from redis.asyncio import Redis

from shared.storage.keys import Keys
from shared.storage.scripts import Scripts


class AllowList:
    def __init__(self, redis: Redis, keys: Keys, *, prefix: str, count_field: str) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts.register(redis)
        self._prefix = prefix
        self._count_field = count_field

    async def allow(self, guild_id: str, entry_id: str) -> bool:
        """Adds the entry to the server's list; False if it was on it already."""
        keys, args = [self._keys.server(guild_id)], [f"{self._prefix}{entry_id}", self._count_field]
        return bool(await self._scripts.add_allowed(keys=keys, args=args))

    async def deny(self, guild_id: str, entry_id: str) -> tuple[bool, int]:
        """Removes the entry from the list: (whether it was on it, how many entries are left on it)."""
        keys, args = [self._keys.server(guild_id)], [f"{self._prefix}{entry_id}", self._count_field]
        removed, left = await self._scripts.remove_allowed(keys=keys, args=args)
        return bool(removed), int(left)

    async def allowed(self, guild_id: str) -> list[str]:
        """The ids on the server's list (empty: the list is off)."""
        fields = await self._redis.hkeys(self._keys.server(guild_id))
        return sorted((f.removeprefix(self._prefix) for f in fields if f.startswith(self._prefix)), key=int)

    async def reset(self, guild_id: str) -> int:
        """Removes the list (off again); returns how many entries were on it."""
        keys, args = [self._keys.server(guild_id)], [self._prefix, self._count_field]
        return int(await self._scripts.reset_allowed(keys=keys, args=args))
