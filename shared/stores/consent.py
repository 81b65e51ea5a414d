"""Who has opted in, and erasing what is stored about a user: their conversations, or everything."""

from __future__ import annotations

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

from shared.config.defaults import STALE_RETRIES
from shared.errors import StaleReadError
from shared.queues.conversation_ids import SHARED_PREFIX, is_shared, lane_of, thread_of
from shared.queues.served_models import KnownModels
from shared.storage.keys import Keys
from shared.storage.scripts import Scripts


class ConsentRegistry:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts.register(redis)
        self._models = KnownModels(redis, keys)

    async def opt_in(self, user_id: str) -> bool:
        """True if the user was not opted in before."""
        return bool(await self._redis.sadd(self._keys.optin, user_id))

    async def is_opted_in(self, user_id: str) -> bool:
        return bool(await self._redis.sismember(self._keys.optin, user_id))

    async def opt_out(self, user_id: str) -> bool:
        """Erases every key and list entry about the user (every job queue's included), their turns in shared
        threads too; True if they had opted in."""
        k = self._keys
        own = [k.optin, *k.user_keys(user_id), k.response, k.dead, k.models]
        return bool(await self._erase(self._scripts.optout, user_id, own, with_queues=True))

    async def forget(self, user_id: str) -> bool:
        """Erases the user's conversations (their turns in shared ones), and keeps what they asked before from being
        stored once answered; True if there were any turns of theirs."""
        k = self._keys
        own = [k.conversations(user_id), k.forgets(user_id), k.optin]
        return bool(await self._erase(self._scripts.forget, user_id, own))

    async def _erase(self, script: AsyncScript, user_id: str, own_keys: list[str], *, with_queues: bool = False) -> int:
        """Runs an erasing script with the keys of the conversations the user's index names, read just before (and
        with `with_queues`, every job queue); the script refuses (-1) if the index gained a conversation meanwhile
        (or the models set a model), and then both are read again."""
        k = self._keys
        names = await self._models.names() if with_queues else ()
        for attempt in range(STALE_RETRIES):
            if with_queues and attempt > 0:
                names = await self._models.refresh()
            conversations = sorted(await self._redis.smembers(k.conversations(user_id)))
            queue_keys, queue_args = self._models.section(names) if with_queues else ([], [])
            keys = [*own_keys, *queue_keys]
            for conversation in conversations:
                keys.append(k.history(conversation))
                if is_shared(conversation):
                    lane = lane_of(conversation, user_id)
                    keys += [k.inflight(lane), k.pending(lane), k.thread(thread_of(conversation))]
            result = int(await script(keys=keys, args=[user_id, SHARED_PREFIX, *queue_args, *conversations]))
            if result != -1:
                return result
        raise StaleReadError(f"the conversations of user {user_id} kept changing while they were erased")
