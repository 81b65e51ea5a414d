"""Threads the bot opened as shared conversations, and dropping the per-user histories of older versions."""

from __future__ import annotations

import logging
import time

from redis.asyncio import Redis

from shared.queues.conversation_ids import shared_conversation
from shared.storage.keys import Keys
from shared.storage.scripts import Scripts

log = logging.getLogger(__name__)


class SharedThreads:
    def __init__(self, redis: Redis, keys: Keys, ttl_s: int) -> None:
        self._redis = redis
        self._keys = keys
        self._ttl_s = ttl_s
        """Like a history's: a thread nobody wrote in for that long is forgotten, and then a plain thread."""
        self._scripts = Scripts.register(redis)

    async def open(self, thread_id: str, guild_id: str, parent_id: str, starter_id: str) -> bool:
        """Registers the thread for everyone in it; False (nothing stored) if the starter is not opted in."""
        k = self._keys
        registered = await self._scripts.open_thread(
            keys=[k.thread(thread_id), k.conversations(starter_id), k.optin],
            args=[guild_id, parent_id, starter_id, time.time(), self._ttl_s, shared_conversation(thread_id)],
        )
        return bool(registered)

    async def sharing(self, thread_id: str) -> tuple[bool, str | None]:
        """Whether the thread is a shared conversation, and who opened it (None once they opted out): the one whose
        choice of model holds there."""
        guild, starter = await self._redis.hmget(self._keys.thread(thread_id), ["guild", "starter"])
        return guild is not None, starter


async def drop_legacy_histories(redis: Redis, keys: Keys) -> int:
    """Deletes the per-user histories (`history:{user}`) kept before conversations were per channel.

    They mix every channel and DM a user wrote in, so no channel may see them; run at the bot's start, it finds
    nothing after the first time.
    """
    dropped = 0
    async for key in redis.scan_iter(match=keys.legacy_history_pattern(), count=1000):
        dropped += int(await redis.delete(key))
    if dropped:
        log.warning(
            "dropped %d conversation histories stored per user by an earlier version (they mixed channels)", dropped
        )
    return dropped
