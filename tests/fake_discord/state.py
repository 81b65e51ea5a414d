"""The fake Discord's world: ids, users, the guild, its channels and stored messages, kept as wire payloads."""

from __future__ import annotations

import copy
import datetime
import re
import time
from dataclasses import dataclass, field
from typing import Any

Payload = dict[str, Any]

DISCORD_EPOCH_MS = 1_420_070_400_000
"""Milliseconds since the Unix epoch at Discord's epoch (2015-01-01), the origin of snowflake timestamps."""

TEXT_CHANNEL_TYPE = 0
DM_CHANNEL_TYPE = 1
DEFAULT_MESSAGE_TYPE = 0
REPLY_MESSAGE_TYPE = 19

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
        35,  # create public threads
        38,  # send messages in threads
    )
)
"""What @everyone may do in the fake guild: enough for a chat bot, nothing administrative."""

USER_MENTION = re.compile(r"<@!?(\d+)>")


def now_iso() -> str:
    return datetime.datetime.now(datetime.UTC).isoformat()


class Snowflakes:
    """Hands out snowflake ids that encode the current time and strictly increase, as Discord's do."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        from_clock = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(from_clock, self._last + 1)
        return str(self._last)


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


@dataclass
class World:
    """Everything the fake knows; REST handlers and the public API read and change it."""

    ids: Snowflakes = field(default_factory=Snowflakes)
    users: dict[str, Payload] = field(default_factory=dict)
    members: dict[str, Payload] = field(default_factory=dict)
    channels: dict[str, Payload] = field(default_factory=dict)
    dm_channel_by_user: dict[str, str] = field(default_factory=dict)
    messages: dict[str, Payload] = field(default_factory=dict)
    nonces: dict[tuple[str, str, str], str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """Uploaded attachments by attachment id: (content type, bytes)."""

    def __post_init__(self) -> None:
        self.guild_id = self.ids.next()
        self.bot_user = self.add_user("fake-bot", bot=True)
        self.bot_user.update(verified=True, mfa_enabled=False)
        # The application's owner is a person outside the guild, as for a bot made by one developer.
        self.owner = user_payload(self.ids.next(), "fake-owner", bot=False)
        self.channel_id = self.add_text_channel("general")["id"]

    @property
    def bot_id(self) -> str:
        return str(self.bot_user["id"])

    def add_user(self, name: str, *, bot: bool = False) -> Payload:
        user = user_payload(self.ids.next(), name, bot=bot)
        self.users[user["id"]] = user
        self.members[user["id"]] = {
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
        return user

    def add_text_channel(self, name: str) -> Payload:
        channel: Payload = {
            "id": self.ids.next(),
            "type": TEXT_CHANNEL_TYPE,
            "guild_id": self.guild_id,
            "name": name,
            "position": len(self.channels),
            "permission_overwrites": [],
            "topic": None,
            "nsfw": False,
            "rate_limit_per_user": 0,
            "parent_id": None,
            "last_message_id": None,
            "flags": 0,
        }
        self.channels[channel["id"]] = channel
        return channel

    def dm_channel_for(self, user_id: str) -> Payload:
        if user_id not in self.dm_channel_by_user:
            channel: Payload = {
                "id": self.ids.next(),
                "type": DM_CHANNEL_TYPE,
                "last_message_id": None,
                "recipients": [self.users[user_id]],
                "flags": 0,
            }
            self.channels[channel["id"]] = channel
            self.dm_channel_by_user[user_id] = channel["id"]
        return self.channels[self.dm_channel_by_user[user_id]]

    def member_payload(self, user_id: str) -> Payload:
        """A member with its user, as GUILD_CREATE and member chunks carry it."""
        return {**self.members[user_id], "user": self.users[user_id]}

    def guild_payload(self, member_ids: list[str]) -> Payload:
        guild_id = self.guild_id
        everyone = {
            "id": guild_id,
            "name": "@everyone",
            "permissions": str(EVERYONE_PERMISSIONS),
            "position": 0,
            "color": 0,
            "hoist": False,
            "managed": False,
            "mentionable": False,
            "flags": 0,
        }
        return {
            "id": guild_id,
            "name": "Fake Guild",
            "icon": None,
            "owner_id": self.owner["id"],
            "unavailable": False,
            "large": False,
            "member_count": len(self.members),
            "joined_at": self.members[self.bot_id]["joined_at"],
            "roles": [everyone],
            "emojis": [],
            "stickers": [],
            "features": [],
            "channels": [c for c in self.channels.values() if c["type"] == TEXT_CHANNEL_TYPE],
            "threads": [],
            "members": [self.member_payload(user_id) for user_id in member_ids],
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

    def mentioned_ids(self, content: str) -> list[str]:
        """Known users written as `<@id>` in `content`, in order, once each."""
        found = [user_id for user_id in USER_MENTION.findall(content) if user_id in self.users]
        return list(dict.fromkeys(found))

    def pinged_ids(
        self, author_id: str, content: str, *, reply_to: str | None, allowed_mentions: Payload | None
    ) -> list[str]:
        """Who a message pings: users written in its content and the replied-to author, as allowed_mentions permits.

        Without allowed_mentions Discord pings everyone written and the replied-to author; with it, only the
        users it allows, and the replied-to author only when `replied_user` is true.
        """
        written = self.mentioned_ids(content)
        if allowed_mentions is None:
            pinged, ping_reply = written, True
        else:
            listed = {str(user_id) for user_id in allowed_mentions.get("users", [])}
            parse_users = "users" in allowed_mentions.get("parse", [])
            pinged = [user_id for user_id in written if parse_users or user_id in listed]
            ping_reply = bool(allowed_mentions.get("replied_user", False))
        if ping_reply and reply_to is not None:
            replied_author = str(self.messages[reply_to]["author"]["id"])
            if replied_author != author_id and replied_author in self.users and replied_author not in pinged:
                pinged.append(replied_author)
        return pinged

    def create_message(
        self,
        channel_id: str,
        author: Payload,
        content: str,
        *,
        mention_ids: list[str],
        reply_to: str | None = None,
        webhook_id: str | None = None,
        nonce: str | None = None,
        embeds: list[Payload] | None = None,
        attachments: list[Payload] | None = None,
    ) -> Payload:
        """Builds a full message as MESSAGE_CREATE carries it, stores it and returns it."""
        channel = self.channels[channel_id]
        guild_id = channel.get("guild_id")
        message: Payload = {
            "id": self.ids.next(),
            "channel_id": channel_id,
            "author": author,
            "content": content,
            "timestamp": now_iso(),
            "edited_timestamp": None,
            "tts": False,
            "mention_everyone": False,
            "mentions": [self._mention(user_id, in_guild=guild_id is not None) for user_id in mention_ids],
            "mention_roles": [],
            "attachments": attachments or [],
            "embeds": embeds or [],
            "components": [],
            "pinned": False,
            "type": DEFAULT_MESSAGE_TYPE,
            "flags": 0,
        }
        if guild_id is not None:
            message["guild_id"] = guild_id
            if webhook_id is None:
                message["member"] = dict(self.members[author["id"]])
        if webhook_id is not None:
            message["webhook_id"] = webhook_id
        if nonce is not None:
            message["nonce"] = nonce
        if reply_to is not None:
            referenced = self.messages[reply_to]
            message["type"] = REPLY_MESSAGE_TYPE
            message["message_reference"] = {
                "type": 0,
                "message_id": reply_to,
                "channel_id": referenced["channel_id"],
                **({"guild_id": referenced["guild_id"]} if "guild_id" in referenced else {}),
            }
            # Discord nests one level only: the referenced message comes without its own referenced message.
            message["referenced_message"] = {k: v for k, v in referenced.items() if k != "referenced_message"}
        self.messages[message["id"]] = message
        channel["last_message_id"] = message["id"]
        return copy.deepcopy(message)

    def delete_message(self, message_id: str) -> Payload:
        """Forgets a message; returns what MESSAGE_DELETE carries about it."""
        message = self.messages.pop(message_id)
        return {key: message[key] for key in ("id", "channel_id", "guild_id") if key in message}

    def _mention(self, user_id: str, *, in_guild: bool) -> Payload:
        user = dict(self.users[user_id])
        if in_guild and user_id in self.members:
            user["member"] = dict(self.members[user_id])
        return user
