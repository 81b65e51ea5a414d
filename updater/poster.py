"""Posting one response: split it, reply to the user's message, record each part so none is posted twice."""

from __future__ import annotations

import logging

import discord

from shared.rate_limit import RequestBudget
from shared.response_queue import ClaimedResponse, PostingState, ResponseQueue
from updater.splitting import split_message

log = logging.getLogger(__name__)

NONCE_MAX_CHARS = 25
"""Discord's limit on a message nonce."""

FINAL_STATUSES = (400, 401, 403, 404)
"""Discord answers that retrying cannot change: bad request, no access, missing permission, deleted."""


class TransientPostError(Exception):
    """Posting failed in a way that may pass (Discord 5xx, network); the response stays claimed and is retried."""


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
    def __init__(self, client: discord.Client, responses: ResponseQueue, budget: RequestBudget) -> None:
        self.client = client
        self.responses = responses
        self.budget = budget
        self.posted_messages = 0

    async def post(self, claimed: ClaimedResponse, state: PostingState | None = None) -> None:
        """Posts what is not yet posted of a response; raises TransientPostError if it should be retried.

        `state` is the response's posting state if read just now (with the claim); else it is read here.
        """
        response = claimed.response
        job_id, user_id = response["job_id"], response["user_id"]
        if state is None:
            state = await self.responses.posting_state(job_id, user_id)
        if not state.opted_in:
            log.info("job %s: user %s opted out; answer not posted", job_id, user_id)
            return
        channel = self.client.get_partial_messageable(int(response["channel_id"]))
        reference = discord.MessageReference(
            message_id=int(job_id), channel_id=int(response["channel_id"]), fail_if_not_exists=False
        )
        for index, text in enumerate(split_message(response["content"])):
            if index in state.posted:
                continue
            # Wait our turn rather than run into Discord's global limit (a 429 there stalls every request).
            await self.budget.take()
            try:
                message = await channel.send(
                    text, reference=reference, allowed_mentions=mentions_for_part(index), nonce=nonce_for(job_id, index)
                )
            except discord.HTTPException as exc:
                if exc.status in FINAL_STATUSES:
                    log.warning(
                        "job %s: Discord refused part %d with %s (%s); not retrying",
                        job_id,
                        index,
                        exc.status,
                        exc.text,
                    )
                    return
                raise TransientPostError(f"Discord answered {exc.status}") from exc
            except (OSError, TimeoutError) as exc:
                raise TransientPostError(type(exc).__name__) from exc
            await self.responses.record_posted(job_id, index, str(message.id))
            self.posted_messages += 1
        log.info("job %s of user %s: %s posted", job_id, user_id, response["kind"])
