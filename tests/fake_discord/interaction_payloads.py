"""INTERACTION_CREATE as Discord builds it for a slash command or its autocomplete (typed options, resolved data) or
for a button pressed on a message (its custom_id and the message): the invoking member with computed permissions,
the partial channel, and the token."""

from __future__ import annotations

from typing import Any

from tests.fake_discord.payloads import DM_CHANNEL_TYPE, THREAD_TYPES
from tests.fake_discord.state import Payload, World

APPLICATION_COMMAND_INTERACTION = 2
MESSAGE_COMPONENT_INTERACTION = 3
AUTOCOMPLETE_INTERACTION = 4
BUTTON_COMPONENT = 2

SUBCOMMAND, SUBCOMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER = 3, 4, 5, 6, 7, 8, 9, 10
CONVERTERS: dict[int, Any] = {STRING: str, INTEGER: int, BOOLEAN: bool, NUMBER: float}

ALL_PERMISSIONS = (1 << 51) - 1
"""Discord resolves an administrator's permissions to every bit (ADMINISTRATOR, 1 << 3, among them)."""

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024
GUILD_CONTEXT, BOT_DM_CONTEXT = 0, 1
GUILD_INSTALL = "0"


def member_permissions(world: World, guild_id: str, *, admin: bool) -> int:
    """What a member may do: @everyone's permissions, or everything for an administrator."""
    everyone = int(world.guilds[guild_id]["permissions"])
    return ALL_PERMISSIONS if admin else everyone


def partial_channel(channel: Payload, permissions: int) -> Payload:
    """A channel as an interaction carries it: its own fields plus the invoker's permissions there."""
    if channel["type"] == DM_CHANNEL_TYPE:
        return dict(channel)
    return {**channel, "permissions": str(permissions)}


def _definitions(command: Payload, subcommand: str | None) -> tuple[list[Payload], list[Payload]]:
    """The option definitions a (sub)command takes, and the subcommand chain (group, subcommand) to reach it."""
    definitions, chain = command.get("options") or [], []
    for part in (subcommand or "").split():
        found = next(
            (d for d in definitions if d["name"] == part and d["type"] in (SUBCOMMAND, SUBCOMMAND_GROUP)), None
        )
        if found is None:
            raise ValueError(f"/{command['name']} has no subcommand {part!r}")
        chain.append(found)
        definitions = found.get("options") or []
    if any(d["type"] in (SUBCOMMAND, SUBCOMMAND_GROUP) for d in definitions):
        raise ValueError(f"/{command['name']} needs a subcommand: Discord cannot run a command group itself")
    return definitions, chain


def command_options(
    world: World,
    command: Payload,
    values: dict[str, Any],
    *,
    subcommand: str | None,
    guild_id: str | None,
    focused: str | None = None,
) -> tuple[list[Payload], Payload]:
    """`values` typed by the registered command's definitions, wrapped in its subcommands, and their resolved data.

    Channel, user and role values are ids (or payloads with an id); Discord adds them under `resolved`. Outside
    autocomplete (`focused`), a required option left out is an error, as Discord's client would not send it.
    """
    definitions, chain = _definitions(command, subcommand)
    by_name = {definition["name"]: definition for definition in definitions}
    resolved: dict[str, dict[str, Payload]] = {}
    options: list[Payload] = []
    for name, value in values.items():
        definition = by_name.get(name)
        if definition is None:
            raise ValueError(f"/{command['name']} has no option {name!r}; it has {sorted(by_name)}")
        option: Payload = {"name": name, "type": definition["type"]}
        if name == focused:
            option.update(value=value, focused=True)  # what the user typed so far, not yet converted
        elif definition["type"] in CONVERTERS:
            option["value"] = CONVERTERS[definition["type"]](value)
        else:
            option["value"] = _resolve(world, definition["type"], value, guild_id, resolved)
        options.append(option)
    missing = [d["name"] for d in definitions if d.get("required") and d["name"] not in values]
    if missing and focused is None:
        raise ValueError(f"/{command['name']} needs option(s) {missing}")
    for level in reversed(chain):
        options = [{"name": level["name"], "type": level["type"], "options": options}]
    return options, resolved


def _resolve(world: World, option_type: int, value: Any, guild_id: str | None, resolved: dict[str, Any]) -> str:
    target = str(value["id"] if isinstance(value, dict) else value)
    if option_type == CHANNEL:
        channel = world.channels[target]
        permissions = member_permissions(world, channel["guild_id"], admin=False) if "guild_id" in channel else 0
        resolved.setdefault("channels", {})[target] = _resolved_channel(channel, permissions)
    elif option_type in (USER, MENTIONABLE) and target in world.users:
        resolved.setdefault("users", {})[target] = world.users[target]
        if guild_id is not None:
            member = {**world.members[target], "permissions": str(member_permissions(world, guild_id, admin=False))}
            resolved.setdefault("members", {})[target] = member
    elif option_type in (ROLE, MENTIONABLE) and (found := world.role(target)) is not None:
        resolved.setdefault("roles", {})[target] = found[1]
    else:
        raise ValueError(f"option type {option_type} with value {value!r} is not modelled by the fake")
    return target


def _resolved_channel(channel: Payload, permissions: int) -> Payload:
    keys = ["id", "name", "type", "parent_id", "flags", "last_message_id", "rate_limit_per_user"]
    if channel["type"] in THREAD_TYPES:
        keys += ["thread_metadata", "owner_id", "message_count", "member_count", "total_message_sent"]
    else:
        keys += ["topic", "position", "nsfw"]
    return {**{key: channel.get(key) for key in keys}, "permissions": str(permissions)}


def interaction_payload(
    world: World,
    *,
    interaction_id: str,
    token: str,
    interaction_type: int,
    command: Payload,
    options: list[Payload],
    resolved: Payload,
    user: Payload,
    channel: Payload,
    admin: bool,
) -> Payload:
    """The whole INTERACTION_CREATE of a command: `member` (with permissions) in a guild, `user` in a DM."""
    data: Payload = {"id": command["id"], "name": command["name"], "type": command["type"], "options": options}
    if resolved:
        data["resolved"] = resolved
    if "guild_id" in command:
        data["guild_id"] = command["guild_id"]
    return _envelope(world, interaction_id, token, interaction_type, data, user=user, channel=channel, admin=admin)


def component_payload(
    world: World, *, interaction_id: str, token: str, custom_id: str, message: Payload, user: Payload, admin: bool
) -> Payload:
    """The INTERACTION_CREATE of a button pressed on `message`: type 3, `data.custom_id`, and the whole message."""
    data: Payload = {"custom_id": custom_id, "component_type": BUTTON_COMPONENT}
    channel = world.channels[message["channel_id"]]
    payload = _envelope(
        world, interaction_id, token, MESSAGE_COMPONENT_INTERACTION, data, user=user, channel=channel, admin=admin
    )
    payload["message"] = message
    return payload


def _envelope(
    world: World,
    interaction_id: str,
    token: str,
    interaction_type: int,
    data: Payload,
    *,
    user: Payload,
    channel: Payload,
    admin: bool,
) -> Payload:
    guild_id = channel.get("guild_id")
    payload: Payload = {
        "id": interaction_id,
        "application_id": world.bot_id,
        "type": interaction_type,
        "data": data,
        "channel_id": channel["id"],
        "token": token,
        "version": 1,
        "locale": "en-US",
        "entitlements": [],
        "entitlement_sku_ids": [],
        "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
        # A guild-installed app: its owner is the guild, or "0" in the bot's DMs.
        "authorizing_integration_owners": {GUILD_INSTALL: guild_id or "0"},
        "context": GUILD_CONTEXT if guild_id else BOT_DM_CONTEXT,
    }
    if guild_id is None:
        payload["user"] = user
        payload["channel"] = partial_channel(channel, 0)
        payload["app_permissions"] = str(member_permissions(world, world.guild_id, admin=False))
        return payload
    permissions = member_permissions(world, guild_id, admin=admin)
    payload.update(
        guild_id=guild_id,
        guild={"id": guild_id, "locale": "en-US", "features": []},
        guild_locale="en-US",
        channel=partial_channel(channel, permissions),
        member={
            **world.members[user["id"]],
            "user": user,
            "permissions": str(permissions),
            "communication_disabled_until": None,
        },
        app_permissions=str(member_permissions(world, guild_id, admin=False)),
    )
    return payload
