"""Nothing waits silently: every few seconds, each message waiting for a model that no live runner serves has its
author told, once, that it waits for that model to be back."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import discord
from redis.asyncio import Redis

from bot import texts
from bot.outbox import Outbox
from shared.errors import JobPayloadError
from shared.queues.conversation_ids import is_shared, job_lane
from shared.queues.schemas import decode_job
from shared.queues.served_models import KnownModels, LiveModels
from shared.storage.client import REDIS_DOWN_ERRORS, Backoff
from shared.storage.keys import Keys
from shared.storage.scripts import Scripts

log = logging.getLogger(__name__)

UNAVAILABLE_CHECK_S = 5.0
"""How often the bot looks for messages waiting for a model that nobody serves."""


class UnavailableModelNotices:
    """Tells each user whose message waits on the queue of a model with no live runner, once: a script marks the
    jobs not yet told and returns them, so with several bot processes each job is still told by one."""

    def __init__(self, client: discord.Client, redis: Redis, keys: Keys, outbox: Outbox, prefix: str) -> None:
        self._client = client
        self._redis = redis
        self._keys = keys
        self._outbox = outbox
        self._prefix = prefix
        self._scripts = Scripts.register(redis)
        self._known = KnownModels(redis, keys)
        self._live = LiveModels(redis, keys)

    async def run(self, closing: asyncio.Event) -> None:
        """Checks every UNAVAILABLE_CHECK_S until `closing` is set, backing off while Redis is unreachable. (Not
        until cancelled: a cancellation that lands in a Redis call can come out as a timeout, retried here.)"""
        backoff = Backoff(base_s=UNAVAILABLE_CHECK_S, cap_s=60.0)
        while not closing.is_set():
            delay = UNAVAILABLE_CHECK_S
            try:
                await self.check()
                backoff.reset()
            except REDIS_DOWN_ERRORS as exc:
                log.warning("Redis unreachable while looking for unserved models (%s)", type(exc).__name__)
                delay = backoff.next_delay()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(closing.wait(), delay)

    async def check(self) -> int:
        """Tells the users not yet told whose messages wait for a model nobody serves now; returns how many."""
        served = await self._live.fresh()
        told = 0
        for model in await self._known.refresh():
            if model in served:
                continue
            for raw in await self._scripts.mark_unavailable_told(keys=[self._keys.query(model)], args=[]):
                told += await self._tell(model, raw)
        return told

    async def _tell(self, model: str, raw: str) -> int:
        try:
            job = decode_job(raw)
        except JobPayloadError:
            return 0
        in_thread = is_shared(job_lane(job))
        log.info("job %s of user %s waits for model %s, which nobody serves: told", job["id"], job["user_id"], model)
        text = texts.model_unavailable_text(model, self._prefix, in_thread=in_thread)
        reference = job.get("interaction")
        if reference is not None:
            # An `/ask` has no message to reply to: the notice takes the place of "thinking…" until the answer does.
            await self._outbox.edit_interaction_original(reference, text)
            return 1
        channel = self._client.get_partial_messageable(int(job["channel_id"]))
        await self._outbox.reply(channel.get_partial_message(int(job["id"])), text)
        return 1
