"""Builders of Discord's wire payloads (users, channels, threads, guilds), apart from the world storing them."""

from __future__ import annotations

import datetime
from typing import Any

Payload = dict[str, Any]

TEXT_CHANNEL_TYPE = 0
DM_CHANNEL_TYPE = 1
ANNOUNCEMENT_THREAD_TYPE = 10
PUBLIC_THREAD_TYPE = 11
PRIVATE_THREAD_TYPE = 12
THREAD_TYPES = (ANNOUNCEMENT_THREAD_TYPE, PUBLIC_THREAD_TYPE, PRIVATE_THREAD_TYPE)

EVERYONE_PERMISSIONS = sum(
    1 << bit
    for bit in (
        6,  # add reactions
        10,  # view channel
        11,  # send messages
        14,  # embed links
        15,  # attach files
        16,  # read message history
        18,  # use external emojis
        31,  # use application commands
        35,  # create public threads
        38,  # send messages in threads
    )
)
"""What @everyone may do in a fake guild: enough for a chat bot, nothing administrative."""


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


def user_payload(user_id: str, name: str, *, bot: bool) -> Payload:
    return {
        "id": user_id,
        "username": name,
        "global_name": None if bot else name,
        "discriminator": "0",
        "avatar": None,
        "bot": bot,
        "public_flags": 0,
        "flags": 0,
    }


def member_record() -> Payload:
    """A guild member without its user, as a message's `member` field carries it."""
    return {
        "roles": [],
        "joined_at": now_iso(),
        "premium_since": None,
        "nick": None,
        "avatar": None,
        "deaf": False,
        "mute": False,
        "pending": False,
        "flags": 0,
    }


def text_channel_payload(channel_id: str, guild_id: str, name: str, *, position: int) -> Payload:
    return {
        "id": channel_id,
        "type": TEXT_CHANNEL_TYPE,
        "guild_id": guild_id,
        "name": name,
        "position": position,
        "permission_overwrites": [],
        "topic": None,
        "nsfw": False,
        "rate_limit_per_user": 0,
        "parent_id": None,
        "last_message_id": None,
        "flags": 0,
    }


def dm_channel_payload(channel_id: str, recipient: Payload) -> Payload:
    return {"id": channel_id, "type": DM_CHANNEL_TYPE, "last_message_id": None, "recipients": [recipient], "flags": 0}


def thread_payload(
    thread_id: str,
    parent: Payload,
    owner_id: str,
    name: str,
    *,
    thread_type: int,
    auto_archive_duration: int,
    rate_limit_per_user: int,
) -> Payload:
    """A new thread as Discord describes it: a channel with a parent, an owner and thread_metadata.

    The owner joins it on creation, so it starts with one member and no messages.
    """
    created = now_iso()
    return {
        "id": thread_id,
        "type": thread_type,
        "guild_id": parent["guild_id"],
        "parent_id": parent["id"],
        "owner_id": owner_id,
        "name": name,
        "last_message_id": None,
        "rate_limit_per_user": rate_limit_per_user,
        "flags": 0,
        "message_count": 0,
        "member_count": 1,
        "total_message_sent": 0,
        "thread_metadata": {
            "archived": False,
            "auto_archive_duration": auto_archive_duration,
            "archive_timestamp": created,
            "locked": False,
            "create_timestamp": created,
            **({"invitable": True} if thread_type == PRIVATE_THREAD_TYPE else {}),
        },
    }


def thread_member_payload(thread_id: str, user_id: str) -> Payload:
    """A thread's member, as a thread's `member` field carries it for the current user."""
    return {"id": thread_id, "user_id": user_id, "join_timestamp": now_iso(), "flags": 0}


def everyone_role(guild_id: str, permissions: int) -> Payload:
    """The @everyone role, whose id is the guild's; discord.py needs it to work out permissions."""
    return {
        "id": guild_id,
        "name": "@everyone",
        "permissions": str(permissions),
        "position": 0,
        "color": 0,
        "hoist": False,
        "managed": False,
        "mentionable": False,
        "flags": 0,
    }


def role_payload(role_id: str, name: str, permissions: int, position: int) -> Payload:
    """A role of a guild, as GUILD_CREATE and resolved options carry it."""
    return {**everyone_role(role_id, permissions), "name": name, "position": position, "mentionable": True}


def guild_payload(
    guild: Payload,
    *,
    owner_id: str,
    joined_at: str,
    member_count: int,
    channels: list[Payload],
    threads: list[Payload],
    members: list[Payload],
) -> Payload:
    """A full guild as GUILD_CREATE carries it, from a stored guild record {id, name, permissions}."""
    return {
        "id": guild["id"],
        "name": guild["name"],
        "icon": None,
        "owner_id": owner_id,
        "unavailable": False,
        "large": False,
        "member_count": member_count,
        "joined_at": joined_at,
        "roles": [everyone_role(guild["id"], guild["permissions"]), *guild.get("roles", [])],
        "emojis": [],
        "stickers": [],
        "features": [],
        "channels": channels,
        "threads": threads,
        "members": members,
        "presences": [],
        "voice_states": [],
        "stage_instances": [],
        "guild_scheduled_events": [],
        "soundboard_sounds": [],
        "verification_level": 0,
        "default_message_notifications": 0,
        "explicit_content_filter": 0,
        "mfa_level": 0,
        "nsfw_level": 0,
        "premium_tier": 0,
        "afk_timeout": 300,
        "system_channel_id": None,
        "system_channel_flags": 0,
        "preferred_locale": "en-US",
    }
