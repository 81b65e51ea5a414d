"""`!access role allow|deny|list|reset [@role]`: who the bot answers in a server (administrators only).

Each action is a method returning the text to answer, so that the slash command wraps it in a few lines.
"""

from __future__ import annotations

import re

from bot import first_contact_texts as say
from bot import texts
from bot.commands.invocation import Invocation
from bot.commands.operators import operator_scope
from bot.commands.personas import server_of
from shared.config.settings import Settings
from shared.stores.role_access import RoleAccess

ROLE_MENTION = re.compile(r"<@&(\d+)>")


def leading_role(text: str) -> tuple[str | None, str]:
    """A role mention at the start of `text`, and what follows it ("<@&5> x" -> ("5", "x"))."""
    match = ROLE_MENTION.match(text)
    if match is None:
        return None, text
    return match.group(1), text[match.end() :].strip()


def parse_access(argument: str) -> tuple[str, str | None] | None:
    """(action, role id) of `role allow|deny @role` or `role list|reset` (role None); None if it is neither."""
    words = argument.split(maxsplit=2)
    if len(words) < 2 or words[0].lower() != "role":
        return None
    action = words[1].lower()
    role_id, rest = leading_role(words[2] if len(words) == 3 else "")
    if rest or (action in ("list", "reset")) != (role_id is None) or action not in ("allow", "deny", "list", "reset"):
        return None
    return action, role_id


class AccessCommands:
    """The methods after `run` assume the caller is an administrator (run checks; the slash command declares it)."""

    def __init__(self, settings: Settings, roles: RoleAccess) -> None:
        self.settings = settings
        self.roles = roles

    async def run(self, invocation: Invocation) -> str:
        """The `!access role ...` command: parses it and answers with one of the methods below."""
        prefix, guild_id = invocation.prefix, invocation.guild_id
        if guild_id is None:
            return say.access_where_text(prefix)
        if not operator_scope(invocation, self.settings.admin_user_ids)[0]:
            return texts.ADMINS_ONLY
        parsed = parse_access(invocation.argument)
        if parsed is None:
            return say.access_usage_text(prefix)
        action, role_id = parsed
        if role_id is None:
            return await (self.list(guild_id) if action == "list" else self.reset(guild_id))
        guild = server_of(invocation)
        if action == "allow" and (guild is None or guild.get_role(int(role_id)) is None):
            return say.UNKNOWN_ROLE
        return await (self.allow(guild_id, role_id) if action == "allow" else self.deny(guild_id, role_id))

    async def allow(self, guild_id: str, role_id: str) -> str:
        newly = await self.roles.allow(guild_id, role_id)
        return say.role_allowed_text(role_id, newly, await self.roles.allowed(guild_id))

    async def deny(self, guild_id: str, role_id: str) -> str:
        removed, left = await self.roles.deny(guild_id, role_id)
        return say.role_denied_text(role_id, removed, left)

    async def list(self, guild_id: str) -> str:
        return say.access_list_text(await self.roles.allowed(guild_id))

    async def reset(self, guild_id: str) -> str:
        return say.access_reset_text(await self.roles.reset(guild_id))
