"""Where a job's parts go: replies in its channel (a message's answer), or an `/ask` answer through its interaction
(the original response, then follow-ups), or, once that token has expired, plain messages in the channel."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import discord

from shared.queues.schemas import InteractionRef, Response
from updater.errors import RefusedError

log = logging.getLogger(__name__)
T = TypeVar("T")
Request = Callable[[Awaitable[Any], Response, str], Awaitable[Any]]
"""Poster._request: sends one call, turning Discord's errors into RefusedError / TransientPostError."""

NONCE_MAX_CHARS = 25
"""Discord's limit on a message nonce."""

TOKEN_MARGIN_S = 30.0
"""An interaction token this close to its end is treated as expired: a request begun now could outlive it."""

CHANNEL_PARTS_FROM = 1000
"""posted:{job} indices of an `/ask` answer's parts posted in the channel after its token expired, apart from the
parts posted through the interaction (which the bot can no longer edit)."""

ORIGINAL = "@original"


def nonce_for(job_id: str, part: int) -> str:
    """The same for every try of one part, so Discord (`enforce_nonce`) refuses to create it twice."""
    nonce = f"{job_id}-{part}"
    if len(nonce) > NONCE_MAX_CHARS:
        raise ValueError(f"nonce {nonce!r} is longer than {NONCE_MAX_CHARS} characters")
    return nonce


def mentions_for_part(part: int) -> discord.AllowedMentions:
    """Only the first part pings, and only the person it replies to: never @everyone, roles or users in the text."""
    return discord.AllowedMentions(everyone=False, users=False, roles=False, replied_user=part == 0)


def token_usable(reference: InteractionRef, now: float | None = None) -> bool:
    return (time.time() if now is None else now) < reference["expires_at"] - TOKEN_MARGIN_S


class Target(Protocol):
    offset: int
    """Where this target's parts start among posted:{job}'s indices."""

    async def create(self, index: int, text: str) -> str: ...

    async def edit(self, message_id: int, text: str) -> None: ...

    async def delete(self, message_id: int) -> None: ...


@dataclass
class ChannelTarget:
    """Messages in the job's channel, each created once (nonce, `enforce_nonce`): replies to the user's message, or
    for an `/ask` whose token expired, plain messages that mention nobody (replying to the "thinking…" message)."""

    client: discord.Client
    response: Response
    request: Request
    reply_to: int | None
    offset: int = 0

    @property
    def channel(self) -> discord.PartialMessageable:
        return self.client.get_partial_messageable(int(self.response["channel_id"]))

    async def create(self, index: int, text: str) -> str:
        channel, part = self.channel, index + self.offset
        reference = None
        if self.reply_to is not None:
            reference = discord.MessageReference(
                message_id=self.reply_to, channel_id=channel.id, fail_if_not_exists=False
            )
        mentions = mentions_for_part(index) if self.offset == 0 else discord.AllowedMentions.none()
        message = await self.request(
            channel.send(
                text,
                reference=reference,  # type: ignore[arg-type]
                allowed_mentions=mentions,
                nonce=nonce_for(self.response["job_id"], part),
            ),
            self.response,
            f"part {part}",
        )
        if message.content != text:
            # The nonce found the part a dead updater created with older text: bring it up to date.
            await self.edit(message.id, text)
        return str(message.id)

    async def edit(self, message_id: int, text: str) -> None:
        partial = self.channel.get_partial_message(message_id)
        await self.request(
            partial.edit(content=text, allowed_mentions=discord.AllowedMentions.none()), self.response, "edit"
        )

    async def delete(self, message_id: int) -> None:
        await self.request(
            self.client.http.delete_message(int(self.response["channel_id"]), message_id), self.response, "delete"
        )


@dataclass
class InteractionTarget:
    """An `/ask` answer through its interaction's webhook: part 0 is the original response (editing it is
    idempotent), further parts follow-ups. A webhook takes no nonce, so each follow-up's creation is recorded before
    it is sent (`intend`), and a retry first looks in the channel for one a dead updater created (`find`)."""

    client: discord.Client
    response: Response
    request: Request
    intend: Callable[[int], Awaitable[None]]
    intended: frozenset[int]
    known: frozenset[str]
    """Message ids of the job's parts already recorded (not to be taken for a lost follow-up)."""
    offset: int = 0

    @property
    def webhook(self) -> discord.Webhook:
        reference = self.response["interaction"]
        application_id, token = int(reference["application_id"]), reference["token"].reveal()
        return discord.Webhook.partial(application_id, token, client=self.client)

    async def create(self, index: int, text: str) -> str:
        if index == 0:
            message = await self._edit(ORIGINAL, text)
            return str(message.id)
        if index in self.intended and (found := await self._find_lost_follow_up()) is not None:
            await self._edit(found, text)
            return found
        await self.intend(index)
        message = await self.request(
            self.webhook.send(text, wait=True, allowed_mentions=discord.AllowedMentions.none()),
            self.response,
            f"follow-up {index}",
        )
        return str(message.id)

    async def edit(self, message_id: int, text: str) -> None:
        await self._edit(str(message_id), text)

    async def delete(self, message_id: int) -> None:
        await self.request(self.webhook.delete_message(message_id), self.response, "delete")

    async def _edit(self, message_id: str, text: str) -> discord.WebhookMessage:
        # "@original" goes into the route as a string: discord.py quotes it, and Discord reads it back.
        edit: Any = self.webhook.edit_message
        call = edit(message_id, content=text, allowed_mentions=discord.AllowedMentions.none())
        message: discord.WebhookMessage = await self.request(call, self.response, "interaction edit")
        return message

    async def _find_lost_follow_up(self) -> str | None:
        """The follow-up of this interaction that no part records: a dead updater created it and died before
        recording it (parts are created one at a time, so there is at most one)."""
        channel_id, job_id = int(self.response["channel_id"]), self.response["job_id"]
        after = int(self.response["interaction"].get("original_id") or job_id)
        try:
            listing = self.client.http.logs_from(channel_id, 100, after=after)
            found = await self.request(listing, self.response, "look-up")
        except RefusedError:
            # Without Read Message History it cannot be found: better a follow-up twice than an answer cut short.
            log.warning("job %s: could not look for a follow-up a dead updater may have sent; sending it", job_id)
            return None
        lost = [
            str(message["id"])
            for message in found
            if str((message.get("interaction_metadata") or {}).get("id")) == job_id
            and str(message["id"]) not in self.known
            and (message.get("interaction_metadata") or {}).get("original_response_message_id") is not None
        ]
        return min(lost, key=int) if lost else None
