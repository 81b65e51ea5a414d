"""`!persona show|set|reset [#channel] [text]`: the system prompt of a server or of one channel (and its threads).

Each action is a method returning the text to answer, so that a slash command wraps it in a few lines; the `!`
command only parses words and mentions.
"""

from __future__ import annotations

import discord

from bot import texts
from bot.commands.invocation import Invocation
from bot.commands.operators import operator_scope
from bot.commands.parsing import leading_channel
from bot.places import Places
from shared.config.settings import Settings
from shared.stores.personas import PERSONA_MAX_CHARS, Personas
from shared.stores.places import Place


def server_of(invocation: Invocation) -> discord.Guild | None:
    """The server a command was run in, as discord.py knows it (None in a DM, or where it has not seen it)."""
    guild = getattr(invocation.channel, "guild", None)
    return guild if isinstance(guild, discord.Guild) else None


def channel_in_server(guild: discord.Guild | None, channel_id: str) -> bool:
    """Whether the channel (or thread) is one of this server's, as far as discord.py knows."""
    return guild is not None and guild.get_channel_or_thread(int(channel_id)) is not None


class PersonaCommands:
    def __init__(self, settings: Settings, personas: Personas, places: Places) -> None:
        self.settings = settings
        self.personas = personas
        self.places = places

    async def run(self, invocation: Invocation) -> str:
        """The `!persona ...` command: parses it and answers with one of the methods below."""
        words = invocation.argument.split(maxsplit=1)
        action = words[0].lower() if words else "show"
        rest = words[1] if len(words) == 2 else ""
        guild = server_of(invocation)
        place = await self.places.at(guild, invocation.channel)
        if action == "show":
            return await self.show(place)
        refusal = self._refusal(invocation, action)
        if refusal is not None:
            return refusal
        channel_id, text = leading_channel(rest)
        if channel_id is not None and not channel_in_server(guild, channel_id):
            return texts.UNKNOWN_CHANNEL
        if action == "set":
            return await self.set(place, channel_id, text, is_admin=True)
        return await self.reset(place, channel_id, is_admin=True) if not text else self._usage(invocation.prefix)

    def _refusal(self, invocation: Invocation, action: str) -> str | None:
        """Why `set`/`reset` cannot be done here by this caller, if so."""
        if action not in ("set", "reset"):
            return self._usage(invocation.prefix)
        if invocation.guild_id is None:
            return texts.persona_where_text(invocation.prefix)
        if not operator_scope(invocation, self.settings.admin_user_ids)[0]:
            return texts.ADMINS_ONLY
        return None

    @staticmethod
    def _usage(prefix: str) -> str:
        return texts.persona_usage_text(prefix, PERSONA_MAX_CHARS)

    async def show(self, place: Place) -> str:
        """For anyone: the prompt in force here (the channel's, its parent's, the server's, else SYSTEM_PROMPT)."""
        found = await self.personas.in_force(place)
        text = found.text if found.text is not None else self.settings.system_prompt
        return texts.persona_show_text(text, found.source, found.channel_id)

    async def set(self, place: Place, channel_id: str | None, text: str, *, is_admin: bool) -> str:
        """For administrators: sets the server's persona (channel_id None) or one channel's."""
        if place.guild_id is None:
            return texts.persona_where_text(self.settings.command_prefix)
        if not is_admin:
            return texts.ADMINS_ONLY
        text = text.strip()
        if not text:
            return texts.PERSONA_EMPTY
        if len(text) > PERSONA_MAX_CHARS:
            return texts.persona_too_long_text(len(text), PERSONA_MAX_CHARS)
        await self.personas.set(place.guild_id, channel_id, text)
        return texts.persona_set_text(channel_id)

    async def reset(self, place: Place, channel_id: str | None, *, is_admin: bool) -> str:
        """For administrators: removes the server's persona (channel_id None) or one channel's."""
        if place.guild_id is None:
            return texts.persona_where_text(self.settings.command_prefix)
        if not is_admin:
            return texts.ADMINS_ONLY
        return texts.persona_reset_text(channel_id, await self.personas.reset(place.guild_id, channel_id))
