"""FakeDiscord: a REST API and gateway on 127.0.0.1, in the test's own event loop, that discord.py takes for Discord."""

from __future__ import annotations

import copy
import secrets
import socket
from collections.abc import Sequence

from aiohttp import web

from tests.fake_discord.cdn import Cdn, Fetch, attachment_payload, serve_attachment
from tests.fake_discord.commands import CommandStore
from tests.fake_discord.controls import Controls
from tests.fake_discord.faults import FaultPlan
from tests.fake_discord.gateway import Gateway
from tests.fake_discord.interaction_api import InteractionApi
from tests.fake_discord.interactions import InteractionStore
from tests.fake_discord.journal import Journal
from tests.fake_discord.rest import API_PREFIX, RestApi
from tests.fake_discord.state import Payload, World
from tests.fake_discord.threads import announce_thread, open_thread

ADMINISTRATOR = 1 << 3
"""The permission bit that gives every other."""

STOP_CLOSE_CODE = 1001
"""Close code for connections still open when the fake stops ("going away")."""

SHUTDOWN_SECONDS = 2.0
"""How long stopping waits for requests still in flight before cancelling them."""


class FakeDiscord(Controls, InteractionApi):
    """One bot account in a guild with a text channel (more on request); users talk, the bot answers through REST.

    Start it, point discord.py at `api_base` and `gateway_url`, log in with `token`. Users made with
    `add_user` send messages with `send_message`; what the bot does lands in `posted`, `edits`, `deleted`,
    `typing`, `reactions` and `requests` (`message_history` has every version of a message). `fail_next` injects
    REST errors, `limit_channel_messages` Discord's per-channel limit; `disconnect_gateway` forces a RESUME.
    Guilds (`add_guild`), threads (`create_thread`) and slash commands (`invoke_command`) are modelled too.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._host, self._port = host, port
        self.token = f"fake-token-{secrets.token_hex(16)}"
        self._world = World()
        self._journal = Journal()
        self._faults = FaultPlan()
        self._gateway = Gateway(self._world, self._journal, self.token)
        self._commands = CommandStore(self._world.bot_id, self._world.ids)
        self._interactions = InteractionStore()
        self._cdn = Cdn()
        self._rest = RestApi(
            self._world,
            self._journal,
            self._gateway,
            self.token,
            self._faults,
            commands=self._commands,
            interactions=self._interactions,
        )
        self._runner: web.AppRunner | None = None
        self._site: web.SockSite | None = None
        self.bot_user: Payload = copy.deepcopy(self._world.bot_user)
        self.guild_id: str = self._world.guild_id
        self.channel_id: str = self._world.channel_id
        # The journal's own lists, so they fill up as requests arrive.
        self.posted: list[Payload] = self._journal.posted
        self.edits: list[Payload] = self._journal.edits
        self.deleted: list[tuple[str, str]] = self._journal.deleted
        self.typing: list[str] = self._journal.typing
        self.reactions: list[tuple[str, str, str]] = self._journal.reactions
        self.reactions_removed: list[tuple[str, str, str]] = self._journal.reactions_removed
        self.requests: list[tuple[str, str, int]] = self._journal.requests
        self.request_times: list[float] = self._journal.request_times

    @property
    def address(self) -> str:
        """host:port it listens on; only known once started, since the port is picked then."""
        if self._runner is None:
            raise RuntimeError("FakeDiscord is not started")
        return f"{self._host}:{self._port}"

    @property
    def api_base(self) -> str:
        return f"http://{self.address}{API_PREFIX}"

    @property
    def gateway_url(self) -> str:
        return f"ws://{self.address}/gateway"

    @property
    def identify_count(self) -> int:
        return self._journal.identify_count

    @property
    def resume_count(self) -> int:
        return self._journal.resume_count

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/gateway", self._gateway.handle)
        app.router.add_get("/attachments/{channel_id}/{attachment_id}/{filename}", self._serve_attachment)
        app.add_subapp(API_PREFIX, self._rest.application())
        # Binding the socket here, rather than letting the site pick a port, tells us the port before serving.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._port = sock.getsockname()[1]
        self._runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=SHUTDOWN_SECONDS)
        await self._runner.setup()
        self._site = web.SockSite(self._runner, sock)
        await self._site.start()
        self._gateway.url = self.gateway_url

    async def stop(self) -> None:
        if self._runner is None or self._site is None:
            return
        self._faults.holds.release_all()
        # Stop listening first, so clients that reconnect on the close below find nobody there.
        await self._site.stop()
        await self._gateway.close_sockets(STOP_CLOSE_CODE)
        await self._runner.cleanup()
        self._runner = self._site = None

    def add_user(self, name: str, *, bot: bool = False) -> Payload:
        """A new member of the guild. Not announced over the gateway: clients learn users from messages."""
        return copy.deepcopy(self._world.add_user(name, bot=bot))

    def add_text_channel(self, name: str, guild_id: str | None = None) -> str:
        """Another text channel (in the first guild by default); add it before the client identifies to know it."""
        if guild_id is not None and guild_id not in self._world.guilds:
            raise KeyError(f"unknown guild {guild_id}")
        return str(self._world.add_text_channel(name, guild_id=guild_id)["id"])

    def add_guild(self, name: str, *, shard: int | None = None, shard_count: int = 2) -> str:
        """Another guild with the bot and every user in it, and a "general" channel; returns its id.

        With `shard`, its id is picked so that Discord's formula puts it on that shard of `shard_count`. Add it
        before the client identifies: sessions learn guilds from READY and GUILD_CREATE only.
        """
        ids = self._world.ids
        guild_id = ids.next() if shard is None else ids.next_on_shard(shard, shard_count)
        return str(self._world.add_guild(name, guild_id=guild_id)["id"])

    def add_role(self, name: str, *, guild_id: str | None = None, administrator: bool = False) -> str:
        """A role of a guild (the first by default); add it before the client identifies, as GUILD_CREATE carries
        roles. An `administrator` role gives its members every permission, as on Discord."""
        return str(
            self._world.add_role(name, guild_id=guild_id, permissions=ADMINISTRATOR if administrator else 0)["id"]
        )

    def give_role(self, user: Payload, role_id: str) -> None:
        """The user holds the role in its guild: their messages' `member.roles` list it from now on."""
        self._world.give_role(str(user["id"]), role_id)

    async def _serve_attachment(self, request: web.Request) -> web.StreamResponse:
        return await serve_attachment(self._world, self._cdn, request)

    @property
    def cdn_fetches(self) -> list[Fetch]:
        """Every fetch of an attachment's URL so far, in order (status 0: a stalled one, never answered)."""
        return list(self._cdn.fetches)

    def expire_attachment(self, attachment_id: str) -> None:
        """The attachment's URL answers 404 from now on, as Discord's signed CDN URLs do once they expire; a file
        name expires every attachment of that name, even one sent later."""
        self._cdn.expired.add(attachment_id)

    def stall_attachment(self, attachment_id: str) -> None:
        """The attachment's URL never answers (the request hangs until the fake stops)."""
        self._cdn.stalled.add(attachment_id)

    def guild_channel(self, guild_id: str) -> str:
        """The "general" text channel of a guild."""
        return str(self._world.guilds[guild_id]["channel_id"])

    @property
    def guild_ids(self) -> list[str]:
        """Every guild, the first one (`guild_id`) first."""
        return list(self._world.guilds)

    @property
    def recommended_shards(self) -> int:
        """The shard count GET /gateway/bot recommends (what AutoShardedClient uses without a shard_count)."""
        return self._world.recommended_shards

    @recommended_shards.setter
    def recommended_shards(self, count: int) -> None:
        self._world.recommended_shards = count

    async def send_message(
        self,
        author: Payload,
        content: str,
        *,
        channel_id: str | None = None,
        dm: bool = False,
        mention_bot: bool = False,
        reply_to: str | None = None,
        webhook: bool = False,
        attachments: Sequence[tuple[str, str | None, bytes]] = (),
        referenced_sent: bool = True,
    ) -> Payload:
        """A user's message: stored, dispatched as MESSAGE_CREATE to every identified session, and returned.

        `mention_bot` puts the bot in `mentions` without touching `content` (write `<@bot id>` to have it
        in the text too; that alone also mentions it). Replying pings the replied-to author, as Discord's
        default does. `dm` sends in the author's DM channel with the bot; `webhook` sends as a webhook
        named like the author. `attachments` are (filename, content type or None, bytes), served by the fake's CDN
        (start the fake first: their URLs name its address). A reply to a message deleted since carries
        `referenced_message: null`, as on Discord; with `referenced_sent` false it carries none at all (Discord did
        not look it up), so a client has to fetch it.
        """
        world = self._world
        author_id = str(author["id"])
        if dm:
            channel_id = world.dm_channel_for(author_id)["id"]
        channel_id = channel_id or self.channel_id
        if channel_id not in world.channels:
            raise KeyError(f"unknown channel {channel_id}")
        if reply_to is not None and reply_to not in world.history:
            raise KeyError(f"unknown message {reply_to} to reply to")
        mention_ids = world.pinged_ids(author_id, content, reply_to=reply_to, allowed_mentions=None)
        if mention_bot and world.bot_id not in mention_ids:
            mention_ids.append(world.bot_id)
        webhook_id = author_id if webhook else None
        sender = {**author, "bot": True, "discriminator": "0000"} if webhook else world.users[author_id]
        files = [attachment_payload(world, f"http://{self.address}", channel_id, file) for file in attachments]
        message = world.create_message(
            channel_id,
            sender,
            content,
            mention_ids=mention_ids,
            reply_to=reply_to,
            webhook_id=webhook_id,
            attachments=files,
        )
        if not referenced_sent:
            message.pop("referenced_message", None)
            world.messages[message["id"]].pop("referenced_message", None)
        await self._gateway.dispatch_message("MESSAGE_CREATE", message)
        return message

    async def create_thread(
        self, author: Payload, name: str, *, channel_id: str | None = None, from_message: str | None = None
    ) -> str:
        """A thread opened by a user (its owner), from `from_message` or in `channel_id`; returns its id.

        Refused as Discord would (bad name, a second thread on one message) with an ApiError. THREAD_CREATE is
        dispatched; a thread from a message takes that message's id.
        """
        if from_message is not None and channel_id is None:
            channel_id = self._world.messages[from_message]["channel_id"]
        parent_id, owner_id = channel_id or self.channel_id, str(author["id"])
        thread = open_thread(self._world, parent_id, owner_id, {"name": name}, starter_message_id=from_message)
        await announce_thread(self._world, self._gateway, thread)
        return str(thread["id"])

    def thread(self, thread_id: str) -> Payload:
        """The current channel payload of a thread (message_count, member_count, thread_metadata, ...)."""
        return copy.deepcopy(self._world.channels[thread_id])

    @property
    def threads(self) -> list[Payload]:
        """Every thread, opened by the bot or by users, in creation order."""
        return copy.deepcopy(self._world.threads())

    async def edit_message(self, message_id: str, content: str) -> None:
        """Changes a stored message's content and dispatches MESSAGE_UPDATE, as when a user edits."""
        edited = self._world.edit_message(message_id, {"content": content})
        await self._gateway.dispatch_message("MESSAGE_UPDATE", edited)

    async def delete_message(self, message_id: str) -> None:
        """Forgets a stored message and dispatches MESSAGE_DELETE."""
        await self._gateway.dispatch_message_delete(self._world.delete_message(message_id))

    def message(self, message_id: str) -> Payload:
        """The current version of a stored message (a user's or the bot's)."""
        return copy.deepcopy(self._world.messages[message_id])

    def message_history(self, message_id: str) -> list[str]:
        """A message's content at creation, then after each edit (the bot's or a user's); kept once deleted."""
        return list(self._world.history[message_id])
