"""Operator commands (`!stats`, `!dead`, `!replay <id>`): who may use them, and what they answer."""

from __future__ import annotations

import discord

from bot import texts
from bot.commands import Command
from shared.queue_inspection import QueueInspection


def operator_scope(message: discord.Message, admin_user_ids: frozenset[str]) -> tuple[bool, str | None]:
    """(allowed, guild): bot-wide operators see every guild (None); a server's administrators see theirs."""
    if str(message.author.id) in admin_user_ids:
        return True, None
    member = message.author
    if message.guild is not None and isinstance(member, discord.Member) and member.guild_permissions.administrator:
        return True, str(message.guild.id)
    return False, None


async def run_admin_command(
    command: Command, message: discord.Message, inspection: QueueInspection, admin_user_ids: frozenset[str]
) -> str:
    allowed, guild_id = operator_scope(message, admin_user_ids)
    if not allowed:
        return texts.ADMINS_ONLY
    if command is Command.STATS:
        return texts.stats_text(await inspection.stats())
    if command is Command.DEAD:
        letters = await inspection.dead_letters(guild_id)
        if not letters:
            return "No failed messages."
        lines = [f"`{d.job_id}` user {d.user_id}: {d.error} after {d.attempts} tries" for d in letters]
        return "Failed messages (newest first):\n" + "\n".join(lines)
    words = message.content.split()
    if len(words) != 2 or not words[1].isdigit():
        return "Usage: replay <message id> (see the ids that `dead` lists)."
    outcomes = {
        "queued": "Requeued; it will be answered shortly.",
        "pending": "Requeued behind that user's other messages.",
        "not_found": "No failed message with that id here.",
        "not_opted_in": "That user has opted out since, so it was dropped.",
    }
    return outcomes[await inspection.replay(words[1], guild_id)]
