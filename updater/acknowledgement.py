"""What a user sees before the first words of an answer: their ⏳ becomes 👀 when a runner starts on the message,
and the channel shows the bot typing until the first part is on Discord. All of it is optional: under pressure it
is skipped, never a final answer delayed for it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import discord

from shared.queues.reactions import TAKEN_EMOJI, WAITING_EMOJI
from shared.queues.responses import ResponseQueue
from shared.queues.schemas import Response
from shared.storage.client import REDIS_DOWN_ERRORS
from updater.pacing import Pacing

log = logging.getLogger(__name__)

TYPING_REFRESH_S = 8.0
"""Discord shows "typing" for 10 s after each request, or until the bot posts in the channel."""
TYPING_LONGEST_S = 120.0
"""A job typed for longer has surely been shown by another updater (or failed); stop announcing it."""


class Acknowledgements:
    def __init__(self, client: discord.Client, pacing: Pacing, responses: ResponseQueue) -> None:
        self.client = client
        self.pacing = pacing
        self.responses = responses
        self._waiting: dict[int, dict[str, float]] = {}
        """Channel id -> the jobs started there whose first part is not shown yet (job id -> start time)."""
        self._typing: dict[int, asyncio.Task[None]] = {}

    async def started(self, response: Response, opted_in: bool) -> None:
        if not opted_in or "interaction" in response:
            return  # an `/ask` has no message to react to, and shows "thinking…" until its answer comes
        channel_id, message_id = int(response["channel_id"]), int(response["job_id"])
        self._waiting.setdefault(channel_id, {})[response["job_id"]] = time.monotonic()
        if channel_id not in self._typing:
            task = asyncio.create_task(self._type(channel_id))
            self._typing[channel_id] = task
            task.add_done_callback(lambda _: self._typing.pop(channel_id, None))
        http = self.client.http
        if self.pacing.may_nicety():
            await self._quietly(http.remove_own_reaction(channel_id, message_id, WAITING_EMOJI))
        if self.pacing.may_nicety():
            await self._quietly(http.add_reaction(channel_id, message_id, TAKEN_EMOJI))

    def shown(self, response: Response) -> None:
        """The job's first words are on Discord: no more typing for it."""
        waiting = self._waiting.get(int(response["channel_id"]))
        if waiting is not None:
            waiting.pop(response["job_id"], None)

    async def close(self) -> None:
        for task in list(self._typing.values()):
            task.cancel()
        await asyncio.gather(*self._typing.values(), return_exceptions=True)

    async def _type(self, channel_id: int) -> None:
        """Keeps "typing" on in the channel while one of its started jobs has nothing shown yet."""
        while True:
            waiting = self._waiting.get(channel_id, {})
            now = time.monotonic()
            for job_id, since in list(waiting.items()):
                if now - since > TYPING_LONGEST_S or await self._has_parts(job_id):
                    waiting.pop(job_id, None)
            if not waiting:
                self._waiting.pop(channel_id, None)
                return
            if self.pacing.may_nicety():
                await self._quietly(self.client.http.send_typing(channel_id))
            await asyncio.sleep(TYPING_REFRESH_S)

    async def _has_parts(self, job_id: str) -> bool:
        """Shown by any updater (this one tells `shown` itself; another one only records the parts)."""
        try:
            return await self.responses.has_posted(job_id)
        except REDIS_DOWN_ERRORS:
            return False

    @staticmethod
    async def _quietly(call: object) -> None:
        """A nicety's failure (no permission, message deleted) is not worth more than a debug line."""
        with contextlib.suppress(discord.HTTPException, OSError, TimeoutError):
            await call  # type: ignore[misc]
