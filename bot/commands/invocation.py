"""Who ran a command, where, and with what argument: the same for `!name` in a message and `/name` as a slash
command, so that both run the same code."""

from __future__ import annotations

from dataclasses import dataclass

import discord

from bot.commands.parsing import command_argument


@dataclass(frozen=True)
class Invocation:
    user: discord.User | discord.Member
    channel: discord.abc.Messageable
    guild_id: str | None
    argument: str
    """What follows the command word ("!chat trip to Peru" -> "trip to Peru"; a slash command's option)."""
    server_admin: bool
    """Whether the user administers the server the command was run in (never true in a DM)."""
    bot_id: int
    prefix: str
    """How the user calls commands here ("!" or "/"), for the texts that name other commands."""
    message: discord.Message | None = None
    """The `!` command's message (a slash command has none)."""

    @property
    def user_id(self) -> str:
        return str(self.user.id)

    @classmethod
    def of_message(cls, message: discord.Message, bot_id: int, prefix: str) -> Invocation:
        member = message.author
        admin = isinstance(member, discord.Member) and member.guild_permissions.administrator
        return cls(
            user=message.author,
            channel=message.channel,
            guild_id=str(message.guild.id) if message.guild else None,
            argument=command_argument(message.content),
            server_admin=admin,
            bot_id=bot_id,
            prefix=prefix,
            message=message,
        )

    @classmethod
    def of_interaction(cls, interaction: discord.Interaction, argument: str = "") -> Invocation:
        # Discord resolves the member's permissions in the interaction itself: no guild cache needed.
        admin = interaction.guild_id is not None and interaction.permissions.administrator
        found = interaction.channel
        channel: discord.abc.Messageable
        if isinstance(found, discord.abc.Messageable):
            channel = found
        else:
            channel = interaction.client.get_partial_messageable(
                interaction.channel_id or 0, guild_id=interaction.guild_id
            )
        return cls(
            user=interaction.user,
            channel=channel,
            guild_id=str(interaction.guild_id) if interaction.guild_id else None,
            argument=argument.strip(),
            server_admin=admin,
            bot_id=interaction.client.user.id if interaction.client.user else 0,
            prefix="/",
        )
