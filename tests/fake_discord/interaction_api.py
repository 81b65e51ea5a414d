"""FakeDiscord's slash-command side: what the bot registered, users running commands, and what the bot answered."""

from __future__ import annotations

import base64
import copy
import secrets
from typing import Any

from tests.fake_discord.commands import CHAT_INPUT_TYPE, CommandStore
from tests.fake_discord.gateway import Gateway
from tests.fake_discord.interaction_payloads import (
    APPLICATION_COMMAND_INTERACTION,
    AUTOCOMPLETE_INTERACTION,
    BOT_DM_CONTEXT,
    GUILD_CONTEXT,
    MESSAGE_COMPONENT_INTERACTION,
    command_options,
    component_payload,
    interaction_payload,
    member_permissions,
)
from tests.fake_discord.interactions import InteractionHandle, InteractionStore
from tests.fake_discord.journal import Journal
from tests.fake_discord.state import Payload, World


def _interaction_token(interaction_id: str) -> str:
    """A fresh token shaped like Discord's: base64 of "interaction:<id>:<secret>"."""
    raw = f"interaction:{interaction_id}:{secrets.token_urlsafe(48)}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class InteractionApi:
    """Commands and interactions on FakeDiscord, which sets the fields below."""

    _world: World
    _journal: Journal
    _gateway: Gateway
    _commands: CommandStore
    _interactions: InteractionStore

    @property
    def command_syncs(self) -> list[tuple[str, list[str]]]:
        """Each bulk overwrite the bot made: ("global" or the guild id, the command names), in order."""
        return self._journal.command_syncs

    def registered_commands(self, guild_id: str | None = None) -> list[Payload]:
        """The global commands (or a guild's own) as Discord stores them: id, version, default_member_permissions..."""
        return copy.deepcopy(self._commands.scopes.get(guild_id, []))

    @property
    def interaction_deadline_s(self) -> float:
        """How long after an interaction its first callback is accepted (Discord: 3 s; later gets 10062)."""
        return self._interactions.deadline_s

    @interaction_deadline_s.setter
    def interaction_deadline_s(self, seconds: float) -> None:
        self._interactions.deadline_s = seconds

    @property
    def interaction_token_ttl_s(self) -> float:
        """How long an interaction's token works for its webhook (Discord: 15 min; later 401, code 50027)."""
        return self._interactions.token_ttl_s

    @interaction_token_ttl_s.setter
    def interaction_token_ttl_s(self, seconds: float) -> None:
        self._interactions.token_ttl_s = seconds

    @property
    def interactions(self) -> list[InteractionHandle]:
        """Every interaction so far, oldest first."""
        return list(self._interactions.by_id.values())

    def interaction(self, interaction_id: str) -> InteractionHandle:
        return self._interactions.by_id[interaction_id]

    async def invoke_command(
        self,
        user: Payload,
        name: str,
        options: dict[str, Any] | None = None,
        *,
        channel_id: str | None = None,
        dm: bool = False,
        subcommand: str | None = None,
        admin: bool = False,
    ) -> InteractionHandle:
        """`user` runs /name (with `subcommand`, "group sub" for a group) in a channel or the bot's DMs.

        The command must be registered where the user is (the guild's own, else global); Discord's client
        would not offer it otherwise, nor to a member lacking its default_member_permissions (`admin` has
        every permission). INTERACTION_CREATE goes to the session of the guild's shard; the returned handle
        records the bot's callback, original answer and follow-ups.
        """
        return await self._invoke(
            user,
            name,
            options or {},
            interaction_type=APPLICATION_COMMAND_INTERACTION,
            channel_id=channel_id,
            dm=dm,
            subcommand=subcommand,
            admin=admin,
        )

    async def invoke_autocomplete(
        self,
        user: Payload,
        name: str,
        focused_option: str,
        value: Any,
        *,
        options: dict[str, Any] | None = None,
        channel_id: str | None = None,
        dm: bool = False,
        subcommand: str | None = None,
    ) -> InteractionHandle:
        """`user` is typing `value` into option `focused_option` of /name; the bot's choices land in `choices`."""
        values = {**(options or {}), focused_option: value}
        return await self._invoke(
            user,
            name,
            values,
            interaction_type=AUTOCOMPLETE_INTERACTION,
            channel_id=channel_id,
            dm=dm,
            subcommand=subcommand,
            focused=focused_option,
        )

    async def press_button(
        self, user: Payload, message_id: str, custom_id: str, *, admin: bool = False
    ) -> InteractionHandle:
        """`user` presses the button `custom_id` on the bot's message `message_id` (Discord's client shows only
        buttons the message has, so another raises LookupError); the handle records the bot's callback (4-7) and
        what it does to the message through `@original`."""
        world = self._world
        user = world.users[str(user["id"])]
        message = world.messages.get(message_id)
        if message is None:
            raise LookupError(f"no message {message_id}")
        buttons = [c for row in message.get("components") or [] for c in row.get("components") or []]
        if not any(button.get("custom_id") == custom_id for button in buttons):
            raise LookupError(f"message {message_id} has no button {custom_id!r}; it has {buttons}")
        interaction_id = world.ids.next()
        token = _interaction_token(interaction_id)
        payload = component_payload(
            world,
            interaction_id=interaction_id,
            token=token,
            custom_id=custom_id,
            message=copy.deepcopy(message),
            user=user,
            admin=admin,
        )
        handle = InteractionHandle(
            id=interaction_id,
            token=token,
            name=custom_id,
            type=MESSAGE_COMPONENT_INTERACTION,
            user_id=user["id"],
            channel_id=message["channel_id"],
            guild_id=message.get("guild_id"),
            payload=payload,
            _world=world,
            _journal=self._journal,
            message_id=message_id,
        )
        self._interactions.by_id[interaction_id] = handle
        guild_id = message.get("guild_id")
        await self._gateway.dispatch("INTERACTION_CREATE", copy.deepcopy(payload), guild_id=guild_id, intent=None)
        return handle

    async def _invoke(
        self,
        user: Payload,
        name: str,
        values: dict[str, Any],
        *,
        interaction_type: int,
        channel_id: str | None,
        dm: bool,
        subcommand: str | None,
        admin: bool = False,
        focused: str | None = None,
    ) -> InteractionHandle:
        world = self._world
        user = world.users[str(user["id"])]
        channel = world.dm_channel_for(user["id"]) if dm else world.channels[channel_id or world.channel_id]
        guild_id = channel.get("guild_id")
        command = self._commands.find(name, guild_id)
        if command is None:
            where = f"in guild {guild_id}" if guild_id else "globally (DMs see only global commands)"
            known = sorted({c["name"] for scope in self._commands.scopes.values() for c in scope})
            raise LookupError(f"/{name} is not registered {where}; registered: {known}")
        self._check_offered(command, guild_id, admin=admin)
        options, resolved = command_options(
            world, command, values, subcommand=subcommand, guild_id=guild_id, focused=focused
        )
        interaction_id = world.ids.next()
        token = _interaction_token(interaction_id)
        payload = interaction_payload(
            world,
            interaction_id=interaction_id,
            token=token,
            interaction_type=interaction_type,
            command=command,
            options=options,
            resolved=resolved,
            user=user,
            channel=channel,
            admin=admin,
        )
        handle = InteractionHandle(
            id=interaction_id,
            token=token,
            name=name,
            type=interaction_type,
            user_id=user["id"],
            channel_id=channel["id"],
            guild_id=guild_id,
            payload=payload,
            _world=world,
            _journal=self._journal,
        )
        self._interactions.by_id[interaction_id] = handle
        # Interactions need no intent: every session of the guild's shard (shard 0 for DMs) gets them.
        await self._gateway.dispatch("INTERACTION_CREATE", copy.deepcopy(payload), guild_id=guild_id, intent=None)
        return handle

    def _check_offered(self, command: Payload, guild_id: str | None, *, admin: bool) -> None:
        """Raises PermissionError where Discord's client would not offer the command to this user there."""
        contexts = command.get("contexts")
        context = GUILD_CONTEXT if guild_id else BOT_DM_CONTEXT
        if contexts is not None and context not in contexts:
            raise PermissionError(f"/{command['name']} is not offered in context {context} (contexts {contexts})")
        if guild_id is None:
            if command.get("dm_permission") is False:
                raise PermissionError(f"/{command['name']} has dm_permission false")
            return
        required = command.get("default_member_permissions")
        if command["type"] == CHAT_INPUT_TYPE and required is not None:
            have = member_permissions(self._world, guild_id, admin=admin)
            # "0" hides it from everyone but administrators.
            if (int(required) == 0 and not admin) or int(required) & ~have:
                raise PermissionError(f"/{command['name']} needs permissions {required}; the user has {have}")
