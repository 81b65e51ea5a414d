"""`!chat [topic]`: opening a thread where every opted-in member talks with the bot together."""

from __future__ import annotations

import logging
from typing import Literal

import discord

from bot import texts
from bot.commands.invocation import Invocation
from bot.outbox import Outbox
from bot.relevance import speaker_name, thread_name
from shared.stores.channel_access import ChannelAccess
from shared.stores.consent import ConsentRegistry
from shared.stores.places import Place
from shared.stores.shared_threads import SharedThreads

log = logging.getLogger(__name__)

AUTO_ARCHIVE_MINUTES: Literal[1440] = 1440
"""Discord archives a thread after a day without messages; a new message unarchives it."""


async def open_chat(
    invocation: Invocation,
    *,
    consent: ConsentRegistry,
    threads: SharedThreads,
    outbox: Outbox,
    access: ChannelAccess,
) -> str | None:
    """Opens and registers the thread (on the `!chat` message, or for `/chat` on its own), and greets in it; returns
    the text to answer with instead, if any."""
    channel, prefix = invocation.channel, invocation.prefix
    refusal = await _refusal(invocation, consent, access)
    if refusal is not None or invocation.guild_id is None or not isinstance(channel, discord.TextChannel):
        return refusal
    user_id = invocation.user_id
    user = invocation.user
    starter = speaker_name(user.display_name, fallback=user.name)
    name = thread_name(invocation.argument, starter)
    try:
        if invocation.message is not None:
            thread = await invocation.message.create_thread(name=name, auto_archive_duration=AUTO_ARCHIVE_MINUTES)
        else:
            thread = await channel.create_thread(
                name=name, auto_archive_duration=AUTO_ARCHIVE_MINUTES, type=discord.ChannelType.public_thread
            )
    except discord.Forbidden:
        return texts.CHAT_NO_PERMISSION
    except discord.HTTPException as exc:
        log.warning("could not open a thread in channel %s: %s %s", channel.id, exc.status, exc.text)
        return texts.CHAT_NO_PERMISSION if exc.status == 403 else texts.BUSY
    if not await threads.open(str(thread.id), invocation.guild_id, str(channel.id), user_id):
        return texts.chat_needs_optin_text(prefix)  # opted out in the meantime: the thread stays a plain one
    log.info("user %s opened shared thread %s", user_id, thread.id)
    await outbox.send(thread, texts.chat_greeting(prefix, starter))
    return None if invocation.message is not None else texts.chat_opened_text(thread.mention)


async def _refusal(invocation: Invocation, consent: ConsentRegistry, access: ChannelAccess) -> str | None:
    """Why no thread can be opened here for this user, if so."""
    channel, prefix = invocation.channel, invocation.prefix
    if invocation.guild_id is None or not isinstance(channel, discord.TextChannel):
        return texts.chat_where_text(prefix)
    if not await consent.is_opted_in(invocation.user_id):
        return texts.chat_needs_optin_text(prefix)
    if not await access.may_speak(Place(invocation.guild_id, str(channel.id))):
        return texts.chat_not_here_text(prefix)  # its thread would follow the channel: the bot would not answer there
    return None
