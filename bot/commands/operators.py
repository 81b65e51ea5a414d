"""Operator commands (`!stats`, `!dead`, `!replay <id>`): who may use them, and what they answer."""

from __future__ import annotations

from bot import texts
from bot.commands.invocation import Invocation
from bot.commands.parsing import Command
from shared.stores.queue_inspection import QueueInspection


def operator_scope(invocation: Invocation, admin_user_ids: frozenset[str]) -> tuple[bool, str | None]:
    """(allowed, guild): bot-wide operators see every guild (None); a server's administrators see theirs."""
    if invocation.user_id in admin_user_ids:
        return True, None
    if invocation.guild_id is not None and invocation.server_admin:
        return True, invocation.guild_id
    return False, None


async def run_admin_command(
    command: Command, invocation: Invocation, inspection: QueueInspection, admin_user_ids: frozenset[str]
) -> str:
    allowed, guild_id = operator_scope(invocation, admin_user_ids)
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
    words = invocation.argument.split()
    if len(words) != 1 or not words[0].isdigit():
        return "Usage: replay <message id> (see the ids that `dead` lists)."
    outcomes = {
        "queued": "Requeued; it will be answered shortly.",
        "pending": "Requeued behind that user's other messages.",
        "not_found": "No failed message with that id here.",
        "not_opted_in": "That user has opted out since, so it was dropped.",
    }
    return outcomes[await inspection.replay(words[0], guild_id)]
