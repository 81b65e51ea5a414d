"""The message a question replies to, quoted in that one answer's prompt (one level, not whole chains): the bot's own
answer, or an opted-in person's message with its text files read and its images passed on. Anyone else's message is
left out, and nothing of a quoted message is ever stored (the runner puts it in the prompt, not in history)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord

from bot.attachments import READ_ERRORS, read_attachments
from bot.relevance import clean_text, speaker_name
from shared.queues.schemas import Quoted

log = logging.getLogger(__name__)

IsOptedIn = Callable[[str], Awaitable[bool]]

GONE = "The message you replied to is gone, so I answered without it."
UNREACHABLE = "I couldn't fetch the message you replied to from Discord, so I answered without it."
NOT_OPTED_IN = "I left out the message you replied to: its author hasn't opted in, so I don't read their messages."


async def replied_to(message: discord.Message) -> discord.Message | str | None:
    """The message `message` replies to (fetched only when Discord did not send it), None if it is no reply, or a
    note saying why it cannot be read."""
    reference = message.reference
    if message.type is not discord.MessageType.reply or reference is None or reference.message_id is None:
        return None
    found = reference.resolved
    if isinstance(found, discord.DeletedReferencedMessage):
        return GONE
    if isinstance(found, discord.Message):
        return found
    try:
        return await message.channel.fetch_message(reference.message_id)
    except discord.NotFound:
        return GONE
    except READ_ERRORS as exc:
        log.warning("could not fetch message %s that %s replies to: %s", reference.message_id, message.id, exc)
        return UNREACHABLE


async def quote(
    message: discord.Message, bot_id: int, is_opted_in: IsOptedIn, *, max_images: int, max_chars: int
) -> tuple[Quoted | None, list[str]]:
    """(what to quote of the message `message` replies to, notes on what was left out)."""
    found = await replied_to(message)
    if found is None:
        return None, []
    if isinstance(found, str):
        return None, [found]
    if found.author.id == bot_id:
        answer = clean_text(found.content)[:max_chars]
        return {"author": found.author.display_name, "by_bot": True, "content": answer}, []
    if found.author.bot or found.webhook_id is not None or not await is_opted_in(str(found.author.id)):
        return None, [NOT_OPTED_IN]
    attached = await read_attachments(found.attachments, max_images=max_images)
    quoted: Quoted = {
        "author": speaker_name(found.author.display_name, fallback=found.author.name),
        "by_bot": False,
        "content": attached.question(clean_text(found.content))[:max_chars],
    }
    if attached.images:
        quoted["images"] = attached.images
    notes = [f"About the message you replied to: {note}" for note in attached.notes]
    return quoted, notes
