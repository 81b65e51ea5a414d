"""`!chat [topic]`: opening a thread where every opted-in member talks with the bot together."""

from __future__ import annotations

import logging
from typing import Literal

import discord

from bot import texts
from bot.outbox import Outbox
from bot.relevance import speaker_name, thread_name
from shared.consent import ConsentRegistry
from shared.shared_threads import SharedThreads

log = logging.getLogger(__name__)

AUTO_ARCHIVE_MINUTES: Literal[1440] = 1440
"""Discord archives a thread after a day without messages; a new message unarchives it."""


async def open_chat(
    message: discord.Message,
    topic: str,
    *,
    prefix: str,
    consent: ConsentRegistry,
    threads: SharedThreads,
    outbox: Outbox,
) -> str | None:
    """Opens and registers the thread, and greets in it; returns the text to reply with instead, if any."""
    channel = message.channel
    if message.guild is None or not isinstance(channel, discord.TextChannel):
        return texts.chat_where_text(prefix)
    user_id = str(message.author.id)
    if not await consent.is_opted_in(user_id):
        return texts.chat_needs_optin_text(prefix)
    starter = speaker_name(message.author.display_name, fallback=message.author.name)
    try:
        thread = await message.create_thread(
            name=thread_name(topic, starter), auto_archive_duration=AUTO_ARCHIVE_MINUTES
        )
    except discord.Forbidden:
        return texts.CHAT_NO_PERMISSION
    except discord.HTTPException as exc:
        log.warning("could not open a thread on message %s: %s %s", message.id, exc.status, exc.text)
        return texts.CHAT_NO_PERMISSION if exc.status == 403 else texts.BUSY
    if not await threads.open(str(thread.id), str(message.guild.id), str(channel.id), user_id):
        return texts.chat_needs_optin_text(prefix)  # opted out in the meantime: the thread stays a plain one
    log.info("user %s opened shared thread %s", user_id, thread.id)
    await outbox.send(thread, texts.chat_greeting(prefix, starter))
    return None
