"""The slash commands: each one a thin wrapper over what its `!` command runs (CommandRunner), its answer seen only
by whoever ran it; `/ask` is the one whose answer the channel sees."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

import discord
from discord import app_commands
from redis.asyncio import Redis

from bot import texts
from bot.commands.invocation import Invocation
from bot.commands.parsing import ADMIN_COMMANDS, Command
from bot.commands.runner import CommandRunner
from bot.slash import REQUEST_ERRORS, failure
from bot.slash.ask import AskIntake
from bot.slash.sync import sync_commands
from shared.storage.keys import Keys

log = logging.getLogger(__name__)

SlashCommand = app_commands.Command[Any, ..., None]
Runner = Callable[[Invocation], Awaitable[str | None]]

MAX_CHOICES = 25
"""Discord shows at most 25 autocomplete choices."""

ADMINISTRATORS = discord.Permissions(administrator=True)
"""Operator commands are hidden from members without it (and checked again when run: ADMIN_USER_IDS too)."""

PLAIN_COMMANDS = (
    Command.OPTIN,
    Command.OPTOUT,
    Command.FORGET,
    Command.HELP,
    Command.STATUS,
    Command.MODELS,
    Command.STATS,
    Command.DEAD,
)
"""The commands without an option: each becomes `/<name>`."""


class SlashCommands:
    def __init__(self, client: discord.Client, commands: CommandRunner, asking: AskIntake) -> None:
        self.tree: app_commands.CommandTree[discord.Client] = app_commands.CommandTree(client)
        self.commands = commands
        self.asking = asking
        for command in PLAIN_COMMANDS:
            self._add(self._plain(command))
        self._add_with_options()
        self._add_server_groups()

    async def sync(self, redis: Redis, keys: Keys) -> list[str]:
        return await sync_commands(self.tree, redis, keys, self.commands.settings.command_guild_ids)

    async def answer(self, interaction: discord.Interaction, run: Runner, argument: str = "") -> None:
        """Defers first (Discord's 3 s hold whatever Redis does), then edits in the answer; only the user sees it.
        `argument` is what the `!` command would have after its name."""
        try:
            await interaction.response.defer(ephemeral=True, thinking=True)
        except REQUEST_ERRORS as exc:
            log.warning("could not defer interaction %s: %s", interaction.id, failure(exc))
            return
        text = await run(Invocation.of_interaction(interaction, argument))
        try:
            await interaction.edit_original_response(
                content=text or texts.DONE, allowed_mentions=discord.AllowedMentions.none()
            )
        except REQUEST_ERRORS as exc:
            log.warning("could not answer interaction %s: %s", interaction.id, failure(exc))

    def _run(self, command: Command) -> Runner:
        return lambda invocation: self.commands.run(command, invocation)

    def _add(self, command: SlashCommand) -> None:
        if command.name in {admin.value for admin in ADMIN_COMMANDS}:
            command.default_permissions = ADMINISTRATORS
        self.tree.add_command(command)

    def _plain(self, command: Command) -> SlashCommand:
        async def callback(interaction: discord.Interaction) -> None:
            await self.answer(interaction, self._run(command))

        return app_commands.Command(
            name=command.value, description=texts.SLASH_DESCRIPTIONS[command.value], callback=callback
        )

    def _add_with_options(self) -> None:
        @app_commands.describe(topic=texts.SLASH_OPTIONS["chat.topic"])
        async def chat(interaction: discord.Interaction, topic: str = "") -> None:
            await self.answer(interaction, self._run(Command.CHAT), topic)

        @app_commands.describe(name=texts.SLASH_OPTIONS["model.name"])
        async def model(interaction: discord.Interaction, name: str = "") -> None:
            await self.answer(interaction, self._run(Command.MODEL), name)

        @app_commands.describe(name=texts.SLASH_OPTIONS["model.name"])
        async def model_default(interaction: discord.Interaction, name: str = "") -> None:
            await self.answer(interaction, self.commands.set_server_default, name)

        @app_commands.describe(id=texts.SLASH_OPTIONS["replay.id"])
        async def replay(interaction: discord.Interaction, id: str) -> None:
            await self.answer(interaction, self._run(Command.REPLAY), id)

        @app_commands.describe(question=texts.SLASH_OPTIONS["ask.question"])
        async def ask(interaction: discord.Interaction, question: str) -> None:
            await self.asking.ask(interaction, question)

        async def served_models(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
            names = await self.commands.model_commands.served_names()
            typed = current.strip().lower()
            matching = [name for name in names if typed in name.lower()][:MAX_CHOICES]
            return [app_commands.Choice(name=name, value=name) for name in matching]

        callbacks: dict[str, Callable[..., Coroutine[Any, Any, None]]] = {
            "chat": chat,
            "model": model,
            "model-default": model_default,
            "replay": replay,
            "ask": ask,
        }
        for name, callback in callbacks.items():
            description = texts.SLASH_DESCRIPTIONS[name]
            command: SlashCommand = app_commands.Command(name=name, description=description, callback=callback)
            if name in ("model", "model-default"):
                command.autocomplete("name")(served_models)
            if name == "model-default":
                command.guild_only = True
                command.default_permissions = ADMINISTRATORS
            self._add(command)

    def _add_server_groups(self) -> None:
        """`/persona show|set|reset` and `/channels allow|deny|list|reset`: each builds the argument its `!` twin
        would have, so the same code parses and checks it. `/persona` stays visible (anyone may `show`; `set` and
        `reset` are checked when run); `/channels` is for administrators alone, so hidden from members."""
        persona = app_commands.Group(name="persona", description=texts.SLASH_DESCRIPTIONS["persona"], guild_only=True)
        channels = app_commands.Group(
            name="channels",
            description=texts.SLASH_DESCRIPTIONS["channels"],
            guild_only=True,
            default_permissions=ADMINISTRATORS,
        )
        run_persona, run_channels = self._run(Command.PERSONA), self._run(Command.CHANNELS)

        @persona.command(name="show", description=texts.SLASH_DESCRIPTIONS["persona.show"])
        async def persona_show(interaction: discord.Interaction) -> None:
            await self.answer(interaction, run_persona, "show")

        @persona.command(name="set", description=texts.SLASH_DESCRIPTIONS["persona.set"])
        @app_commands.describe(text=texts.SLASH_OPTIONS["persona.text"], channel=texts.SLASH_OPTIONS["channel"])
        async def persona_set(
            interaction: discord.Interaction, text: str, channel: discord.abc.GuildChannel | None = None
        ) -> None:
            await self.answer(interaction, run_persona, f"set {_mention(channel)}{text}")

        @persona.command(name="reset", description=texts.SLASH_DESCRIPTIONS["persona.reset"])
        @app_commands.describe(channel=texts.SLASH_OPTIONS["channel"])
        async def persona_reset(
            interaction: discord.Interaction, channel: discord.abc.GuildChannel | None = None
        ) -> None:
            await self.answer(interaction, run_persona, f"reset {_mention(channel)}")

        @channels.command(name="allow", description=texts.SLASH_DESCRIPTIONS["channels.allow"])
        @app_commands.describe(channel=texts.SLASH_OPTIONS["channel"])
        async def channels_allow(interaction: discord.Interaction, channel: discord.abc.GuildChannel) -> None:
            await self.answer(interaction, run_channels, f"allow {_mention(channel)}")

        @channels.command(name="deny", description=texts.SLASH_DESCRIPTIONS["channels.deny"])
        @app_commands.describe(channel=texts.SLASH_OPTIONS["channel"])
        async def channels_deny(interaction: discord.Interaction, channel: discord.abc.GuildChannel) -> None:
            await self.answer(interaction, run_channels, f"deny {_mention(channel)}")

        @channels.command(name="list", description=texts.SLASH_DESCRIPTIONS["channels.list"])
        async def channels_list(interaction: discord.Interaction) -> None:
            await self.answer(interaction, run_channels, "list")

        @channels.command(name="reset", description=texts.SLASH_DESCRIPTIONS["channels.reset"])
        async def channels_reset(interaction: discord.Interaction) -> None:
            await self.answer(interaction, run_channels, "reset")

        self.tree.add_command(persona)
        self.tree.add_command(channels)
        self.tree.add_command(self._access_group())

    def _access_group(self) -> app_commands.Group:
        """`/access role allow|deny|list|reset`: for administrators alone, so hidden from members."""
        access = app_commands.Group(
            name="access",
            description=texts.SLASH_DESCRIPTIONS["access"],
            guild_only=True,
            default_permissions=ADMINISTRATORS,
        )
        role = app_commands.Group(name="role", description=texts.SLASH_DESCRIPTIONS["access.role"], parent=access)
        run_access = self._run(Command.ACCESS)

        @role.command(name="allow", description=texts.SLASH_DESCRIPTIONS["access.role.allow"])
        @app_commands.describe(role=texts.SLASH_OPTIONS["role"])
        async def role_allow(interaction: discord.Interaction, role: discord.Role) -> None:
            await self.answer(interaction, run_access, f"role allow <@&{role.id}>")

        @role.command(name="deny", description=texts.SLASH_DESCRIPTIONS["access.role.deny"])
        @app_commands.describe(role=texts.SLASH_OPTIONS["role"])
        async def role_deny(interaction: discord.Interaction, role: discord.Role) -> None:
            await self.answer(interaction, run_access, f"role deny <@&{role.id}>")

        @role.command(name="list", description=texts.SLASH_DESCRIPTIONS["access.role.list"])
        async def role_list(interaction: discord.Interaction) -> None:
            await self.answer(interaction, run_access, "role list")

        @role.command(name="reset", description=texts.SLASH_DESCRIPTIONS["access.role.reset"])
        async def role_reset(interaction: discord.Interaction) -> None:
            await self.answer(interaction, run_access, "role reset")

        return access


def _mention(channel: discord.abc.GuildChannel | None) -> str:
    """A channel option as the `!` command reads it: its mention and a space, or nothing."""
    return f"<#{channel.id}> " if channel is not None else ""
