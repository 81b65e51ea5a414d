"""Bringing a job's messages to the text they should show: parts created as replies (each once: a nonce from the
job and part, `enforce_nonce`), edited where they show something else, deleted when a final text is shorter, every
part recorded in posted:{job} as soon as it is on Discord."""

from __future__ import annotations

import logging
from collections.abc import Awaitable
from typing import TypeVar

import discord

from shared.response_queue import PostingState, ResponseQueue
from shared.schemas import Response
from updater.pacing import Pacing
from updater.rendering import Action, Shown, digest, plan

log = logging.getLogger(__name__)
T = TypeVar("T")

NONCE_MAX_CHARS = 25
"""Discord's limit on a message nonce."""

FINAL_STATUSES = (400, 401, 403, 404)
"""Discord answers that retrying cannot change: bad request, no access, missing permission, deleted."""


class TransientPostError(Exception):
    """Posting failed in a way that may pass (Discord 5xx, network); the response stays claimed and is retried."""


class RefusedError(Exception):
    """Discord refused a request for good (FINAL_STATUSES): logged once, and the response is finished."""

    def __init__(self, status: int) -> None:
        super().__init__(f"Discord answered {status}")
        self.status = status


def nonce_for(job_id: str, part: int) -> str:
    """The same for every try of one part, so Discord (`enforce_nonce`) refuses to create it twice."""
    nonce = f"{job_id}-{part}"
    if len(nonce) > NONCE_MAX_CHARS:
        raise ValueError(f"nonce {nonce!r} is longer than {NONCE_MAX_CHARS} characters")
    return nonce


def mentions_for_part(part: int) -> discord.AllowedMentions:
    """Only the first part pings, and only the person it replies to: never @everyone, roles or users in the text."""
    return discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=part == 0)


class Poster:
    def __init__(self, client: discord.Client, responses: ResponseQueue, pacing: Pacing) -> None:
        self.client = client
        self.responses = responses
        self.pacing = pacing
        self.posted_messages = 0
        self.edits = 0

    async def show(self, response: Response, shown: Shown, state: PostingState) -> bool:
        """Brings the job's messages to `shown`; False when a partial was cut short for want of room (the next
        partial, or the final text, takes over). Raises TransientPostError when it should be retried."""
        job_id, channel_id = response["job_id"], int(response["channel_id"])
        channel = self.client.get_partial_messageable(channel_id)
        dropped: list[int] = []
        for action in plan(shown, state):
            if shown.final:
                await self.pacing.must(channel_id)
            elif not self.pacing.may(channel_id):
                log.debug("job %s: partial update put off (Discord's limits are near)", job_id)
                return False
            try:
                await self._apply(channel, response, action)
            except RefusedError:
                return True
            if action.kind == "delete":
                dropped.append(action.index)
        if shown.final and not response.get("fresh"):
            await self.responses.record_final(job_id, dropped)
        return True

    async def retract(self, response: Response, state: PostingState) -> None:
        """Deletes every part of the job (its user opted out mid-stream) and forgets them."""
        channel_id = int(response["channel_id"])
        for message_id in state.posted.values():
            await self.pacing.must(channel_id)
            await self._delete(channel_id, int(message_id), response)
        await self.responses.forget_posted(response["job_id"])
        log.info(
            "job %s: user %s opted out; %d parts deleted", response["job_id"], response["user_id"], len(state.posted)
        )

    async def _apply(self, channel: discord.PartialMessageable, response: Response, action: Action) -> None:
        job_id = response["job_id"]
        if action.kind == "delete":
            await self._delete(channel.id, int(action.message_id), response)
            return
        if action.kind == "edit":
            try:
                await self._edit(channel, int(action.message_id), action.text, response)
            except RefusedError as refused:
                if refused.status != 404:
                    raise
                # Someone deleted the part: it is posted anew, as if it had never been.
                action = Action("create", action.index, action.text)
            else:
                await self.responses.record_posted(job_id, action.index, action.message_id, digest(action.text))
                self.edits += 1
                return
        message_id = await self._create(channel, response, action.index, action.text)
        await self.responses.record_posted(job_id, action.index, message_id, digest(action.text))
        self.posted_messages += 1

    async def _create(self, channel: discord.PartialMessageable, response: Response, index: int, text: str) -> str:
        reference = discord.MessageReference(
            message_id=int(response["job_id"]), channel_id=channel.id, fail_if_not_exists=False
        )
        message = await self._request(
            channel.send(
                text,
                reference=reference,
                allowed_mentions=mentions_for_part(index),
                nonce=nonce_for(response["job_id"], index),
            ),
            response,
            f"part {index}",
        )
        if message.content != text:
            # The nonce found the part a dead updater created with older text: bring it up to date.
            await self._edit(channel, message.id, text, response)
        return str(message.id)

    async def _edit(self, channel: discord.PartialMessageable, message_id: int, text: str, response: Response) -> None:
        partial = channel.get_partial_message(message_id)
        await self._request(
            partial.edit(content=text, allowed_mentions=discord.AllowedMentions.none()), response, "edit"
        )

    async def _delete(self, channel_id: int, message_id: int, response: Response) -> None:
        try:
            await self._request(self.client.http.delete_message(channel_id, message_id), response, "delete")
        except RefusedError as refused:
            if refused.status != 404:  # already gone is what we wanted
                raise

    async def _request(self, call: Awaitable[T], response: Response, what: str) -> T:
        try:
            return await call
        except discord.HTTPException as exc:
            if exc.status in FINAL_STATUSES:
                log.warning(
                    "job %s: Discord refused %s with %s (%s); not retrying",
                    response["job_id"],
                    what,
                    exc.status,
                    exc.text,
                )
                raise RefusedError(exc.status) from None
            raise TransientPostError(f"Discord answered {exc.status}") from exc
        except (OSError, TimeoutError) as exc:
            raise TransientPostError(type(exc).__name__) from exc
