"""Bringing a job's messages to the text they should show: parts created as replies (each once: a nonce from the
job and part, `enforce_nonce`), edited where they show something else, deleted when a final text is shorter, every
part recorded in posted:{job} as soon as it is on Discord."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Awaitable
from typing import TypeVar

import discord

from shared.queues.responses import PostingState, ResponseQueue
from shared.queues.schemas import Response
from updater.errors import FINAL_STATUSES, RefusedError, TransientPostError
from updater.pacing import Pacing
from updater.rendering import Action, Shown, digest, plan
from updater.targets import (
    CHANNEL_PARTS_FROM,
    ChannelTarget,
    InteractionTarget,
    Target,
    token_usable,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


class TokenExpiredError(Exception):
    """An interaction's webhook refused its token (401): the answer goes to the channel instead."""


def _seen_by(state: PostingState, offset: int) -> PostingState:
    """The parts of one target (see CHANNEL_PARTS_FROM), indexed from 0, as plan() takes them."""
    upper = offset + CHANNEL_PARTS_FROM if offset == 0 else None
    posted = {i - offset: m for i, m in state.posted.items() if i >= offset and (upper is None or i < upper)}
    digests = {i - offset: d for i, d in state.digests.items() if i >= offset and (upper is None or i < upper)}
    return dataclasses.replace(state, posted=posted, digests=digests)


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
        reference = response.get("interaction")
        if reference is not None and token_usable(reference):
            try:
                return await self._show(response, shown, state, self._interaction_target(response, state))
            except TokenExpiredError:
                log.info("job %s: its interaction's token has expired; posting in the channel", response["job_id"])
        return await self._show(response, shown, state, self._channel_target(response, state))

    async def _show(self, response: Response, shown: Shown, state: PostingState, target: Target) -> bool:
        job_id, channel_id = response["job_id"], int(response["channel_id"])
        dropped: list[int] = []
        for action in plan(shown, _seen_by(state, target.offset)):
            if shown.final:
                await self.pacing.must(channel_id)
            elif not self.pacing.may(channel_id):
                log.debug("job %s: partial update put off (Discord's limits are near)", job_id)
                return False
            try:
                await self._apply(target, response, action)
            except RefusedError as refused:
                if refused.status == 401 and isinstance(target, InteractionTarget):
                    raise TokenExpiredError from None
                return True
            if action.kind == "delete":
                dropped.append(action.index + target.offset)
        if shown.final and not response.get("fresh"):
            await self.responses.record_final(job_id, dropped)
        return True

    def _interaction_target(self, response: Response, state: PostingState) -> InteractionTarget:
        job_id = response["job_id"]
        return InteractionTarget(
            self.client,
            response,
            self._request,
            intend=lambda index: self.responses.record_intent(job_id, index),
            intended=state.intents,
            known=frozenset(state.posted.values()),
        )

    def _channel_target(self, response: Response, state: PostingState) -> ChannelTarget:
        if "interaction" not in response:
            return ChannelTarget(self.client, response, self._request, reply_to=int(response["job_id"]))
        # The token is gone: plain messages, replying to the "thinking…" message when its id is known.
        original = state.posted.get(0) or response["interaction"].get("original_id")
        reply_to = int(original) if original else None
        return ChannelTarget(self.client, response, self._request, reply_to=reply_to, offset=CHANNEL_PARTS_FROM)

    async def retract(self, response: Response, state: PostingState) -> None:
        """Deletes every part of the job (its user opted out mid-stream) and forgets them."""
        channel_id = int(response["channel_id"])
        reference = response.get("interaction")
        webhook = self._interaction_target(response, state) if reference and token_usable(reference) else None
        channel = self._channel_target(response, state)
        for index, message_id in state.posted.items():
            await self.pacing.must(channel_id)
            target: Target = webhook if webhook is not None and index < CHANNEL_PARTS_FROM else channel
            await self._delete(target, int(message_id))
        await self.responses.forget_posted(response["job_id"])
        log.info(
            "job %s: user %s opted out; %d parts deleted", response["job_id"], response["user_id"], len(state.posted)
        )

    async def _apply(self, target: Target, response: Response, action: Action) -> None:
        job_id, index = response["job_id"], action.index + target.offset
        if action.kind == "delete":
            await self._delete(target, int(action.message_id))
            return
        if action.kind == "edit":
            try:
                await target.edit(int(action.message_id), action.text)
            except RefusedError as refused:
                if refused.status != 404:
                    raise
                # Someone deleted the part: it is posted anew, as if it had never been.
                action = Action("create", action.index, action.text)
            else:
                await self.responses.record_posted(job_id, index, action.message_id, digest(action.text))
                self.edits += 1
                return
        message_id = await target.create(action.index, action.text)
        await self.responses.record_posted(job_id, index, message_id, digest(action.text))
        self.posted_messages += 1

    async def _delete(self, target: Target, message_id: int) -> None:
        try:
            await target.delete(message_id)
        except RefusedError as refused:
            if refused.status not in (401, 403, 404):  # already gone, or no longer ours to delete
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
