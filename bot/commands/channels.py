"""`!channels allow|deny|list|reset [#channel]`: where the bot speaks in a server (administrators only).

Each action is a method returning the text to answer, so that a slash command wraps it in a few lines.
"""

from __future__ import annotations

from bot import texts
from bot.commands.invocation import Invocation
from bot.commands.operators import operator_scope
from bot.commands.parsing import leading_channel
from bot.commands.personas import channel_in_server, server_of
from shared.config.settings import Settings
from shared.stores.channel_access import ChannelAccess


class ChannelCommands:
    """The methods after `run` assume the caller is an administrator (run checks; a slash command declares it)."""

    def __init__(self, settings: Settings, access: ChannelAccess) -> None:
        self.settings = settings
        self.access = access

    async def run(self, invocation: Invocation) -> str:
        """The `!channels ...` command: parses it and answers with one of the methods below."""
        prefix, guild_id = invocation.prefix, invocation.guild_id
        if guild_id is None:
            return texts.channels_where_text(prefix)
        if not operator_scope(invocation, self.settings.admin_user_ids)[0]:
            return texts.ADMINS_ONLY
        words = invocation.argument.split(maxsplit=1)
        action = words[0].lower() if words else "list"
        channel_id, rest = leading_channel(words[1] if len(words) == 2 else "")
        if action in ("list", "reset") and channel_id is None and not rest:
            return await (self.list(guild_id) if action == "list" else self.reset(guild_id))
        if action not in ("allow", "deny") or channel_id is None or rest:
            return texts.channels_usage_text(prefix)
        if not channel_in_server(server_of(invocation), channel_id):
            return texts.UNKNOWN_CHANNEL
        return await (self.allow(guild_id, channel_id) if action == "allow" else self.deny(guild_id, channel_id))

    async def allow(self, guild_id: str, channel_id: str) -> str:
        newly = await self.access.allow(guild_id, channel_id)
        return texts.channel_allowed_text(channel_id, newly, await self.access.allowed(guild_id))

    async def deny(self, guild_id: str, channel_id: str) -> str:
        removed, left = await self.access.deny(guild_id, channel_id)
        return texts.channel_denied_text(channel_id, removed, left)

    async def list(self, guild_id: str) -> str:
        return texts.channels_list_text(await self.access.allowed(guild_id))

    async def reset(self, guild_id: str) -> str:
        return texts.channels_reset_text(await self.access.reset(guild_id))
