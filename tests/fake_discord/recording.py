"""A discord.py client that queues what it receives, for the tests that check the fake against real discord.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import discord

from tests.fake_discord.server import FakeDiscord

EVENT_TIMEOUT_SECONDS = 5.0
"""Longest wait for anything the fake sends; every step here takes milliseconds when it works."""

GUILD_READY_SECONDS = 0.1
"""discord.py waits this long after the last GUILD_CREATE before on_ready (2 s by default)."""


def chat_intents(*, message_content: bool = True) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = intents.guild_messages = intents.dm_messages = True
    intents.message_content = message_content
    return intents


class RecordingMixin:
    """Queues of received events, shared by the plain and the auto-sharded recording clients."""

    user: discord.ClientUser | None

    def _init_queues(self) -> None:
        self.ready = asyncio.Event()
        self.resumed = asyncio.Event()
        self.inbox: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.own_echoes: asyncio.Queue[discord.Message] = asyncio.Queue()
        self.raw_edits: asyncio.Queue[discord.RawMessageUpdateEvent] = asyncio.Queue()
        self.raw_deletes: asyncio.Queue[discord.RawMessageDeleteEvent] = asyncio.Queue()
        self.new_threads: asyncio.Queue[discord.Thread] = asyncio.Queue()
        self.interactions: asyncio.Queue[discord.Interaction] = asyncio.Queue()

    async def on_ready(self) -> None:
        self.ready.set()

    async def on_resumed(self) -> None:
        self.resumed.set()

    async def on_message(self, message: discord.Message) -> None:
        assert self.user is not None
        await (self.own_echoes if message.author.id == self.user.id else self.inbox).put(message)

    async def on_raw_message_edit(self, event: discord.RawMessageUpdateEvent) -> None:
        await self.raw_edits.put(event)

    async def on_raw_message_delete(self, event: discord.RawMessageDeleteEvent) -> None:
        await self.raw_deletes.put(event)

    async def on_thread_create(self, thread: discord.Thread) -> None:
        await self.new_threads.put(thread)

    async def on_interaction(self, interaction: discord.Interaction) -> None:
        await self.interactions.put(interaction)

    async def next_message(self) -> discord.Message:
        return await asyncio.wait_for(self.inbox.get(), EVENT_TIMEOUT_SECONDS)

    async def next_thread(self) -> discord.Thread:
        return await asyncio.wait_for(self.new_threads.get(), EVENT_TIMEOUT_SECONDS)

    async def next_interaction(self) -> discord.Interaction:
        return await asyncio.wait_for(self.interactions.get(), EVENT_TIMEOUT_SECONDS)


class RecordingClient(RecordingMixin, discord.Client):
    """A discord.Client that queues what it receives, so tests can await each event in turn."""

    def __init__(self, *, message_content: bool = True, **options: Any) -> None:
        super().__init__(
            intents=chat_intents(message_content=message_content), guild_ready_timeout=GUILD_READY_SECONDS, **options
        )
        self._init_queues()

    def text_channel(self, channel_id: str) -> discord.TextChannel:
        channel = self.get_channel(int(channel_id))
        assert isinstance(channel, discord.TextChannel)
        return channel


class ShardRecordingClient(RecordingMixin, discord.AutoShardedClient):
    """An AutoShardedClient running the given shards of `shard_count` (all that Discord recommends if None)."""

    def __init__(self, shard_ids: list[int] | None = None, shard_count: int | None = None) -> None:
        super().__init__(
            intents=chat_intents(),
            guild_ready_timeout=GUILD_READY_SECONDS,
            shard_ids=shard_ids,
            shard_count=shard_count,
        )
        self._init_queues()


async def start_client(fake: FakeDiscord, client: discord.Client) -> asyncio.Task[None]:
    """Starts `client` against `fake` and returns its task once on_ready fired (or raises what start raised)."""
    assert isinstance(client, RecordingMixin)
    running = asyncio.create_task(client.start(fake.token))
    ready = asyncio.create_task(client.ready.wait())
    await asyncio.wait({running, ready}, timeout=EVENT_TIMEOUT_SECONDS, return_when=asyncio.FIRST_COMPLETED)
    ready.cancel()
    if running.done():
        running.result()
    assert client.ready.is_set(), "on_ready did not fire"
    return running


@asynccontextmanager
async def running(fake: FakeDiscord, client: discord.Client) -> AsyncIterator[None]:
    """Runs `client` against `fake` for the block (on_ready has fired on entry), then closes it."""
    task = await start_client(fake, client)
    try:
        yield
    finally:
        await client.close()
        await asyncio.wait_for(task, EVENT_TIMEOUT_SECONDS)
