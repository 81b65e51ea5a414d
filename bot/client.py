"""The discord.py client: its event handlers read like a table of contents of what the bot does."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import discord
from redis.asyncio import Redis

from bot.commands.access import AccessCommands
from bot.commands.channels import ChannelCommands
from bot.commands.invocation import Invocation
from bot.commands.models import ModelCommands
from bot.commands.parsing import parse_command
from bot.commands.personas import PersonaCommands
from bot.commands.runner import CommandRunner
from bot.consent_buttons import ConsentButtons
from bot.first_contact import ConsentPrompts, FirstContacts
from bot.intake import MessageIntake
from bot.outbox import Outbox
from bot.places import Places
from bot.slash.ask import AskIntake
from bot.slash.tree import SlashCommands
from bot.unavailable_models import UnavailableModelNotices
from shared.config.settings import Settings
from shared.queues.job_queue import JobQueue
from shared.queues.served_models import LiveModels
from shared.runtime.observability.checks import refresh_queue_gauges
from shared.runtime.observability.discord_requests import request_counter
from shared.storage.client import create_redis, wait_for_redis
from shared.storage.keys import Keys
from shared.stores.channel_access import ChannelAccess
from shared.stores.consent import ConsentRegistry
from shared.stores.model_choice import ModelChoices
from shared.stores.personas import Personas
from shared.stores.queue_inspection import QueueInspection
from shared.stores.role_access import RoleAccess
from shared.stores.shared_threads import SharedThreads, drop_legacy_histories
from shared.stores.waiting_status import WaitingStatusReader

log = logging.getLogger(__name__)


class LlamaBot(discord.Client):
    """The bot on one gateway connection holding every guild (no sharding); ShardedLlamaBot holds some shards."""

    def __init__(self, settings: Settings, **sharding: Any) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True
        # Nothing the bot posts may ping anyone unless a call says so explicitly.
        super().__init__(
            intents=intents,
            allowed_mentions=discord.AllowedMentions.none(),
            http_trace=request_counter("bot"),
            **sharding,
        )
        self.settings = settings
        self.redis: Redis = create_redis(settings)
        self.keys = Keys()
        self.consent = ConsentRegistry(self.redis, self.keys)
        self.inspection = QueueInspection(self.redis, self.keys)
        self.threads = SharedThreads(self.redis, self.keys, settings.history_ttl_s)
        self.waiting = WaitingStatusReader(self.redis, self.keys)
        self.outbox = Outbox(settings, self)
        self.models = ModelChoices(self.redis, self.keys, LiveModels(self.redis, self.keys), settings.default_model)
        queue = JobQueue(self.redis, self.keys, settings)
        places = Places(self.fetch_channel)
        self.access = access = ChannelAccess(self.redis, self.keys, allow_dms=settings.allow_dms)
        # First contact: what the bot remembers of people who have not opted in lives here, in memory only.
        contacts = FirstContacts(settings.consent_hold_s)
        self.consent_buttons = ConsentButtons(settings.command_prefix, self.consent, contacts, self._answer_held)
        prompts = ConsentPrompts(settings, self.outbox, contacts, self.consent_buttons.template())
        self.intake = MessageIntake(
            settings,
            queue,
            self.consent,
            self.threads,
            self.outbox,
            models=self.models,
            access=access,
            places=places,
            prompts=prompts,
        )
        self.model_commands = ModelCommands(settings, self.models, queue, self.threads)
        self.commands = CommandRunner(
            settings,
            consent=self.consent,
            waiting=self.waiting,
            model_commands=self.model_commands,
            threads=self.threads,
            inspection=self.inspection,
            outbox=self.outbox,
            access=access,
            personas=PersonaCommands(settings, Personas(self.redis, self.keys), places),
            channels=ChannelCommands(settings, access),
            access_commands=AccessCommands(settings, RoleAccess(self.redis, self.keys)),
            contacts=contacts,
        )
        self.slash = SlashCommands(self, self.commands, AskIntake(self.intake))
        self.unavailable = UnavailableModelNotices(self, self.redis, self.keys, self.outbox, settings.command_prefix)
        self._closing = asyncio.Event()
        self._watching: asyncio.Task[None] | None = None
        self._gauges: asyncio.Task[None] | None = None

    @property
    def accepted(self) -> int:
        return self.intake.accepted

    async def setup_hook(self) -> None:
        # The consent prompt's buttons answer presses on prompts sent before this process started, too.
        self.add_view(self.consent_buttons.view())
        await wait_for_redis(self.redis, self.settings)
        await drop_legacy_histories(self.redis, self.keys)
        await self.slash.sync(self.redis, self.keys)
        self._watching = asyncio.create_task(self.unavailable.run(self._closing))
        # One bot process refreshes the queue gauges: the one holding shard 0 (every one of them, unsharded).
        if self.settings.metrics_port and (not self.settings.shard_ids or 0 in self.settings.shard_ids):
            self._gauges = asyncio.create_task(refresh_queue_gauges(self.inspection, self._closing))

    async def gateway_problem(self) -> str | None:
        """Why this process is not connected to the Discord gateway now, or None when it is (a health check)."""
        if self.is_closed():
            return "the Discord gateway connection is closed"
        if not self.is_ready():
            return "not connected to the Discord gateway yet"
        if self.ws is None or not self.ws.open:
            return "the Discord gateway connection is down (reconnecting)"
        return None

    async def close(self) -> None:
        self._closing.set()
        for task in (self._watching, self._gauges):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        await super().close()
        await self.redis.aclose()

    async def on_ready(self) -> None:
        log.info(
            "connected to Discord as %s (id %s) in %d guilds", self.user, self.user and self.user.id, len(self.guilds)
        )

    async def on_message(self, message: discord.Message) -> None:
        if message.author.bot or message.webhook_id is not None or self.user is None:
            return  # never answer bots (or ourselves): two bots must not talk in a loop
        command = parse_command(message.content, self.settings.command_prefix)
        if command is not None:
            invocation = Invocation.of_message(message, self.user.id, self.settings.command_prefix)
            text = await self.commands.run(command, invocation)
            if text is not None:
                await self.outbox.reply(message, text)
            return
        await self.intake.consider(message, self.user.id)

    async def _answer_held(self, message: discord.Message) -> None:
        """A message held by a consent prompt, taken in once its author pressed Opt in."""
        if self.user is not None:
            await self.intake.consider(message, self.user.id)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if self.user is not None:
            await self.intake.edited(payload.message_id, payload.message, self.user.id)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.intake.deleted(payload.message_id)


class ShardedLlamaBot(LlamaBot, discord.AutoShardedClient):
    """The bot holding SHARD_IDS of SHARD_COUNT gateway shards (all of them without SHARD_IDS; SHARD_COUNT=auto asks
    Discord how many). Bot processes share nothing but Redis: each queues the messages of its shards' guilds."""

    async def gateway_problem(self) -> str | None:
        if self.is_closed():
            return "the Discord gateway connection is closed"
        if not self.is_ready():
            return "not connected to the Discord gateway yet"
        down = sorted(shard_id for shard_id, shard in self.shards.items() if shard.is_closed())
        if down:
            return f"gateway shards {', '.join(map(str, down))} disconnected (reconnecting)"
        return None


def create_bot(settings: Settings) -> LlamaBot:
    """One plain gateway connection unless SHARD_COUNT is set."""
    if settings.shard_count is None:
        return LlamaBot(settings)
    count = settings.shard_count if isinstance(settings.shard_count, int) else None
    return ShardedLlamaBot(settings, shard_count=count, shard_ids=list(settings.shard_ids) or None)
