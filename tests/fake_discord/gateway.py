"""The fake Discord gateway: a websocket that says HELLO, answers IDENTIFY and RESUME, and dispatches events."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.fake_discord.journal import Journal
from tests.fake_discord.state import Payload, World

log = logging.getLogger(__name__)

HEARTBEAT_INTERVAL_MS = 41_250
"""What HELLO asks for (real Discord's value): after its first beat, discord.py stays quiet that long."""

CLOSE_TIMEOUT_SECONDS = 2.0
"""How long a server-side close waits for the client's close frame before dropping the connection."""

APPLICATION_FLAGS = 1 << 19
"""GATEWAY_MESSAGE_CONTENT_LIMITED: the message content intent is switched on, as for an unverified bot."""

INTENT_GUILDS = 1 << 0
INTENT_GUILD_MESSAGES = 1 << 9
INTENT_DIRECT_MESSAGES = 1 << 12
INTENT_MESSAGE_CONTENT = 1 << 15

OP_DISPATCH, OP_HEARTBEAT, OP_IDENTIFY, OP_RESUME = 0, 1, 2, 6
OP_REQUEST_MEMBERS, OP_INVALID_SESSION, OP_HELLO, OP_HEARTBEAT_ACK = 8, 9, 10, 11
CLOSE_DECODE_ERROR, CLOSE_NOT_AUTHENTICATED, CLOSE_AUTH_FAILED, CLOSE_ALREADY_AUTHENTICATED = 4002, 4003, 4004, 4005


def _frame(op: int, data: Any, *, event: str | None = None, seq: int | None = None) -> str:
    return json.dumps({"op": op, "d": data, "s": seq, "t": event}, separators=(",", ":"))


def _message_intent(guild_id: str | None) -> int:
    return INTENT_DIRECT_MESSAGES if guild_id is None else INTENT_GUILD_MESSAGES


@dataclass
class GatewaySession:
    """One identified client: its sequence numbers and every event sent to it, so a RESUME can replay them."""

    session_id: str
    intents: int
    shard: tuple[int, int]
    ws: web.WebSocketResponse | None
    seq: int = 0
    sent: list[tuple[int, str]] = field(default_factory=list)
    # Holding this while sending keeps frames in seq order and lets a replay finish before newer events.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def sees_guild(self, guild_id: str | None) -> bool:
        """Whether this shard carries the guild's events (DMs go to shard 0), by Discord's sharding formula."""
        shard_id, shard_count = self.shard
        if guild_id is None:
            return shard_id == 0
        return (int(guild_id) >> 22) % shard_count == shard_id

    async def dispatch(self, event: str, data: Payload) -> None:
        async with self.lock:
            self.seq += 1
            frame = _frame(OP_DISPATCH, data, event=event, seq=self.seq)
            self.sent.append((self.seq, frame))
            await self._send(frame)

    async def _send(self, frame: str) -> None:
        if self.ws is None or self.ws.closed:
            return  # kept in `sent`; a RESUME will replay it
        try:
            await self.ws.send_str(frame)
        except ConnectionResetError:
            log.debug("session %s: socket went away mid-send; the event waits for a RESUME", self.session_id)

    async def resume_on(self, ws: web.WebSocketResponse, after_seq: int) -> None:
        async with self.lock:
            self.ws = ws
            for seq, frame in self.sent:
                if seq > after_seq:
                    await self._send(frame)
        await self.dispatch("RESUMED", {"_trace": ["fake-discord"]})


class Gateway:
    """Serves websocket connections and fans dispatched events out to the sessions that should see them."""

    def __init__(self, world: World, journal: Journal, token: str) -> None:
        self._world = world
        self._journal = journal
        self._token = token
        self.url = ""
        self.sessions: dict[str, GatewaySession] = {}
        self._sockets: set[web.WebSocketResponse] = set()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        # The query string (v, encoding, compress) is ignored: frames always go out as uncompressed TEXT JSON.
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT_SECONDS, max_msg_size=0)
        await ws.prepare(request)
        self._sockets.add(ws)
        session: GatewaySession | None = None
        try:
            await ws.send_str(_frame(OP_HELLO, {"heartbeat_interval": HEARTBEAT_INTERVAL_MS}))
            async for message in ws:
                if message.type is not WSMsgType.TEXT:
                    continue
                try:
                    payload = json.loads(message.data)
                except ValueError:
                    await ws.close(code=CLOSE_DECODE_ERROR, message=b"Error while decoding payload.")
                    break
                session = await self._on_payload(ws, session, payload)
        finally:
            self._sockets.discard(ws)
            if session is not None and session.ws is ws:
                session.ws = None
        return ws

    async def _on_payload(
        self, ws: web.WebSocketResponse, session: GatewaySession | None, payload: Payload
    ) -> GatewaySession | None:
        op, d = payload.get("op"), payload.get("d")
        data: Payload = d if isinstance(d, dict) else {}  # a heartbeat's d is a number; the rest are objects
        if op == OP_HEARTBEAT:
            await ws.send_str(_frame(OP_HEARTBEAT_ACK, None))
        elif op == OP_IDENTIFY:
            if session is not None:
                await ws.close(code=CLOSE_ALREADY_AUTHENTICATED, message=b"You sent more than one identify payload.")
                return session
            return await self._identify(ws, data)
        elif op == OP_RESUME:
            return await self._resume(ws, data)
        elif op == OP_REQUEST_MEMBERS:
            if session is None:
                await ws.close(code=CLOSE_NOT_AUTHENTICATED, message=b"Not authenticated.")
            else:
                await self._send_member_chunk(session, data)
        # Presence (3) and voice state (4) updates change nothing the fake models.
        return session

    async def _identify(self, ws: web.WebSocketResponse, data: Payload) -> GatewaySession | None:
        if data.get("token") != self._token:
            await ws.close(code=CLOSE_AUTH_FAILED, message=b"Authentication failed.")
            return None
        shard_id, shard_count = data.get("shard") or (0, 1)
        session = GatewaySession(
            session_id=secrets.token_hex(16), intents=int(data.get("intents", 0)), shard=(shard_id, shard_count), ws=ws
        )
        self.sessions[session.session_id] = session
        world = self._world
        guild_ids = [guild_id for guild_id in world.guilds if session.sees_guild(guild_id)]
        ready = {
            "v": 10,
            "user": world.bot_user,
            "guilds": [{"id": guild_id, "unavailable": True} for guild_id in guild_ids],
            "session_id": session.session_id,
            "session_type": "normal",
            "resume_gateway_url": self.url,
            "application": {"id": world.bot_id, "flags": APPLICATION_FLAGS},
            "shard": [shard_id, shard_count],
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "user_settings": {},
            "_trace": ["fake-discord"],
        }
        await session.dispatch("READY", ready)
        for guild_id in guild_ids:
            # Without the presences intent Discord lists only the bot itself among the members.
            await session.dispatch("GUILD_CREATE", world.guild_payload(guild_id, [world.bot_id]))
        self._journal.identify_count += 1
        self._journal.notify()
        log.debug("session %s identified (intents %d)", session.session_id, session.intents)
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: Payload) -> GatewaySession | None:
        session = self.sessions.get(str(data.get("session_id")))
        if session is None or data.get("token") != self._token:
            await ws.send_str(_frame(OP_INVALID_SESSION, False))
            return None
        await session.resume_on(ws, int(data.get("seq") or 0))
        self._journal.resume_count += 1
        self._journal.notify()
        log.debug("session %s resumed", session.session_id)
        return session

    async def _send_member_chunk(self, session: GatewaySession, data: Payload) -> None:
        world = self._world
        chunk = {
            "guild_id": str(data.get("guild_id") or world.guild_id),
            "members": [world.member_payload(user_id) for user_id in world.members],
            "chunk_index": 0,
            "chunk_count": 1,
            "not_found": [],
            **({"nonce": data["nonce"]} if data.get("nonce") else {}),
        }
        await session.dispatch("GUILD_MEMBERS_CHUNK", chunk)

    async def dispatch(self, event: str, data: Payload, *, guild_id: str | None, intent: int | None) -> None:
        """Sends the event to every session whose shard carries the guild (or DMs) and that asked for `intent`.

        Events without an intent (None), such as INTERACTION_CREATE, go to every such session.
        """
        for session in list(self.sessions.values()):
            if session.sees_guild(guild_id) and (intent is None or session.intents & intent):
                await session.dispatch(event, data)

    async def dispatch_message(self, event: str, message: Payload) -> None:
        """MESSAGE_CREATE/UPDATE, filtered by intents and blanked as Discord does without MESSAGE_CONTENT."""
        guild_id = message.get("guild_id")
        intent = _message_intent(guild_id)
        bot_id = self._world.bot_id
        keeps_content = (
            guild_id is None
            or message["author"]["id"] == bot_id
            or any(user["id"] == bot_id for user in message.get("mentions", []))
        )
        for session in list(self.sessions.values()):
            if not (session.sees_guild(guild_id) and session.intents & intent):
                continue
            if keeps_content or session.intents & INTENT_MESSAGE_CONTENT:
                await session.dispatch(event, message)
            else:
                blanked = {**message, "content": "", "embeds": [], "attachments": [], "components": []}
                await session.dispatch(event, blanked)

    async def dispatch_thread_create(self, thread: Payload, *, member: Payload | None = None) -> None:
        """THREAD_CREATE for a new thread (GUILDS intent); `member` is the bot's own thread membership, if any."""
        data = {**thread, "newly_created": True, **({"member": member} if member else {})}
        await self.dispatch("THREAD_CREATE", data, guild_id=thread["guild_id"], intent=INTENT_GUILDS)

    async def dispatch_message_delete(self, deleted: Payload) -> None:
        guild_id = deleted.get("guild_id")
        await self.dispatch("MESSAGE_DELETE", deleted, guild_id=guild_id, intent=_message_intent(guild_id))

    async def close_sockets(self, code: int) -> None:
        """Closes every open connection with `code`; the sessions stay, so clients can RESUME them."""
        reason = b"fake Discord closed the connection"
        await asyncio.gather(*(ws.close(code=code, message=reason) for ws in self._sockets))
