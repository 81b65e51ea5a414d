"""The fake Discord's world: ids, users, guilds, their channels and threads, and stored messages, as wire payloads."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from tests.fake_discord.payloads import (
    EVERYONE_PERMISSIONS,
    PUBLIC_THREAD_TYPE,
    TEXT_CHANNEL_TYPE,
    THREAD_TYPES,
    Payload,
    dm_channel_payload,
    everyone_role,
    guild_payload,
    member_record,
    now_iso,
    role_payload,
    text_channel_payload,
    thread_payload,
    user_payload,
)
from tests.fake_discord.snowflakes import Snowflakes

__all__ = ["Payload", "Snowflakes", "World", "now_iso"]

DEFAULT_MESSAGE_TYPE = 0
REPLY_MESSAGE_TYPE = 19
HAS_THREAD_FLAG = 1 << 5
"""Message flag Discord sets on a thread's starter message."""

THREAD_MEMBER_COUNT_CAP = 50
"""Discord stops counting a thread's members at 50."""

USER_MENTION = re.compile(r"<@!?(\d+)>")
ROLE_MENTION = re.compile(r"<@&(\d+)>")


@dataclass
class World:
    """Everything the fake knows; REST handlers and the public API read and change it.

    Users are members of every guild (one member record each), and the bot is in every guild.
    """

    ids: Snowflakes = field(default_factory=Snowflakes)
    users: dict[str, Payload] = field(default_factory=dict)
    members: dict[str, Payload] = field(default_factory=dict)
    guilds: dict[str, Payload] = field(default_factory=dict)
    """Guild records {id, name, permissions (of @everyone), channel_id (its "general")}, by id."""
    channels: dict[str, Payload] = field(default_factory=dict)
    """Every channel and thread, in creation order, by id."""
    dm_channel_by_user: dict[str, str] = field(default_factory=dict)
    messages: dict[str, Payload] = field(default_factory=dict)
    ephemeral_messages: dict[str, Payload] = field(default_factory=dict)
    """Interaction answers only their invoker sees: outside every channel, reachable only through the webhook."""
    history: dict[str, list[str]] = field(default_factory=dict)
    """Each message's content at creation, then after each edit; kept after the message is deleted."""
    thread_members: dict[str, list[str]] = field(default_factory=dict)
    nonces: dict[tuple[str, str, str], str] = field(default_factory=dict)
    files: dict[str, tuple[str, bytes]] = field(default_factory=dict)
    """Uploaded attachments by attachment id: (content type, bytes)."""
    recommended_shards: int = 1
    """What GET /gateway/bot answers as `shards`."""

    def __post_init__(self) -> None:
        self.guild_id = self.ids.next()
        self.bot_user = self.add_user("fake-bot", bot=True)
        self.bot_user.update(verified=True, mfa_enabled=False)
        # The application's owner is a person outside the guild, as for a bot made by one developer.
        self.owner = user_payload(self.ids.next(), "fake-owner", bot=False)
        self.channel_id = self.add_guild("Fake Guild", guild_id=self.guild_id)["channel_id"]

    @property
    def bot_id(self) -> str:
        return str(self.bot_user["id"])

    def add_user(self, name: str, *, bot: bool = False) -> Payload:
        user = user_payload(self.ids.next(), name, bot=bot)
        self.users[user["id"]] = user
        self.members[user["id"]] = member_record()
        return user

    def add_guild(self, name: str, *, guild_id: str | None = None) -> Payload:
        """A guild with a "general" text channel; the bot and every user are its members."""
        guild: Payload = {"id": guild_id or self.ids.next(), "name": name, "permissions": EVERYONE_PERMISSIONS}
        self.guilds[guild["id"]] = guild
        guild["channel_id"] = self.add_text_channel("general", guild_id=guild["id"])["id"]
        return guild

    def add_role(self, name: str, *, guild_id: str | None = None, permissions: int = 0) -> Payload:
        """A role of a guild (the first by default) beyond @everyone; members get it with `give_role`."""
        guild = self.guilds[guild_id or self.guild_id]
        roles = guild.setdefault("roles", [])
        role = role_payload(self.ids.next(), name, permissions, position=len(roles) + 1)
        roles.append(role)
        return role

    def role(self, role_id: str) -> tuple[str, Payload] | None:
        """(guild id, role) of a role by id, @everyone (whose id is its guild's) included."""
        for guild_id, guild in self.guilds.items():
            if role_id == guild_id:
                return guild_id, everyone_role(guild_id, int(guild["permissions"]))
            for role in guild.get("roles", []):
                if role["id"] == role_id:
                    return guild_id, role
        return None

    def give_role(self, user_id: str, role_id: str) -> None:
        """The member holds the role from now on (every message's `member.roles` lists it)."""
        roles = self.members[user_id]["roles"]
        if role_id not in roles:
            roles.append(role_id)

    def add_text_channel(self, name: str, *, guild_id: str | None = None) -> Payload:
        guild_id = guild_id or self.guild_id
        position = sum(1 for c in self.channels.values() if c.get("guild_id") == guild_id)
        channel = text_channel_payload(self.ids.next(), guild_id, name, position=position)
        self.channels[channel["id"]] = channel
        return channel

    def dm_channel_for(self, user_id: str) -> Payload:
        if user_id not in self.dm_channel_by_user:
            channel = dm_channel_payload(self.ids.next(), self.users[user_id])
            self.channels[channel["id"]] = channel
            self.dm_channel_by_user[user_id] = channel["id"]
        return self.channels[self.dm_channel_by_user[user_id]]

    def add_thread(
        self,
        parent_id: str,
        owner_id: str,
        name: str,
        *,
        starter_message_id: str | None = None,
        thread_type: int = PUBLIC_THREAD_TYPE,
        auto_archive_duration: int = 1440,
        rate_limit_per_user: int = 0,
    ) -> Payload:
        """Stores a new thread; one opened from a message takes that message's id, as on Discord."""
        thread = thread_payload(
            starter_message_id or self.ids.next(),
            self.channels[parent_id],
            owner_id,
            name,
            thread_type=thread_type,
            auto_archive_duration=auto_archive_duration,
            rate_limit_per_user=rate_limit_per_user,
        )
        self.channels[thread["id"]] = thread
        self.thread_members[thread["id"]] = [owner_id]
        if starter_message_id is not None:
            starter = self.messages[starter_message_id]
            starter["thread"] = thread
            starter["flags"] = starter.get("flags", 0) | HAS_THREAD_FLAG
        return thread

    def threads(self, guild_id: str | None = None) -> list[Payload]:
        """Threads in creation order, of one guild if given."""
        return [c for c in self.channels.values() if c["type"] in THREAD_TYPES and guild_id in (None, c["guild_id"])]

    def member_payload(self, user_id: str) -> Payload:
        """A member with its user, as GUILD_CREATE and member chunks carry it."""
        return {**self.members[user_id], "user": self.users[user_id]}

    def guild_payload(self, guild_id: str, member_ids: list[str]) -> Payload:
        """GUILD_CREATE's guild: its text channels and active threads, so a client that identifies knows them."""
        channels = [c for c in self.channels.values() if c["type"] == TEXT_CHANNEL_TYPE and c["guild_id"] == guild_id]
        return guild_payload(
            self.guilds[guild_id],
            owner_id=self.owner["id"],
            joined_at=self.members[self.bot_id]["joined_at"],
            member_count=len(self.members),
            channels=channels,
            threads=[t for t in self.threads(guild_id) if not t["thread_metadata"]["archived"]],
            members=[self.member_payload(user_id) for user_id in member_ids],
        )

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
        if ping_reply and reply_to is not None and reply_to in self.messages:
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
        components: list[Payload] | None = None,
        flags: int = 0,
        overrides: Payload | None = None,
        ephemeral: bool = False,
    ) -> Payload:
        """Builds a full message as MESSAGE_CREATE carries it, stores it and returns it.

        `overrides` replaces fields last (an interaction response's type and interaction_metadata). An
        `ephemeral` message is kept apart from the channel's messages.
        """
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
            "mention_roles": list(dict.fromkeys(ROLE_MENTION.findall(content))) if guild_id else [],
            "attachments": attachments or [],
            "embeds": embeds or [],
            "components": components or [],
            "pinned": False,
            "type": DEFAULT_MESSAGE_TYPE,
            "flags": flags,
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
            referenced = self.messages.get(reply_to)
            message["type"] = REPLY_MESSAGE_TYPE
            message["message_reference"] = {
                "type": 0,
                "message_id": reply_to,
                "channel_id": channel_id,
                **({"guild_id": guild_id} if guild_id is not None else {}),
            }
            # Discord nests one level only: the referenced message comes without its own referenced message; a
            # message deleted since is null.
            message["referenced_message"] = (
                None if referenced is None else {k: v for k, v in referenced.items() if k != "referenced_message"}
            )
        message.update(overrides or {})
        self.history[message["id"]] = [content]
        if ephemeral:
            self.ephemeral_messages[message["id"]] = message
            return copy.deepcopy(message)
        self.messages[message["id"]] = message
        channel["last_message_id"] = message["id"]
        if channel["type"] in THREAD_TYPES:
            self._count_thread_message(channel, str(author["id"]))
        return copy.deepcopy(message)

    def edit_message(self, message_id: str, changes: Payload) -> Payload:
        """Applies an edit (content, embeds, ...), stamps it and records the content it leaves."""
        message = self.messages.get(message_id) or self.ephemeral_messages[message_id]
        message.update(changes, edited_timestamp=now_iso())
        self.history[message_id].append(message.get("content") or "")
        return copy.deepcopy(message)

    def delete_message(self, message_id: str) -> Payload:
        """Forgets a message (its history stays); returns what MESSAGE_DELETE carries about it."""
        message = self.messages.pop(message_id)
        channel = self.channels.get(message["channel_id"])
        if channel is not None and channel["type"] in THREAD_TYPES:
            # Discord's message_count drops with deletes; total_message_sent never does.
            channel["message_count"] = max(0, channel["message_count"] - 1)
        return {key: message[key] for key in ("id", "channel_id", "guild_id") if key in message}

    def _count_thread_message(self, thread: Payload, author_id: str) -> None:
        """A message in a thread counts towards it and makes its author a member, as posting joins a thread."""
        thread["message_count"] += 1
        thread["total_message_sent"] += 1
        members = self.thread_members[thread["id"]]
        if author_id in self.users and author_id not in members:
            members.append(author_id)
            thread["member_count"] = min(len(members), THREAD_MEMBER_COUNT_CAP)

    def _mention(self, user_id: str, *, in_guild: bool) -> Payload:
        user = dict(self.users[user_id])
        if in_guild and user_id in self.members:
            user["member"] = dict(self.members[user_id])
        return user
