"""The discord.py client: its event handlers read like a table of contents of what the bot does."""

from __future__ import annotations

import asyncio
import logging

import discord
from redis.asyncio import Redis

from bot.command_runner import CommandRunner
from bot.commands import parse_command
from bot.intake import MessageIntake
from bot.invocation import Invocation
from bot.model_commands import ModelCommands
from bot.outbox import Outbox
from bot.slash.ask import AskIntake
from bot.slash.tree import SlashCommands
from bot.unavailable_models import UnavailableModelNotices
from shared.consent import ConsentRegistry
from shared.job_queue import JobQueue
from shared.keys import Keys
from shared.model_choice import ModelChoices
from shared.queue_inspection import QueueInspection
from shared.redis_client import create_redis, wait_for_redis
from shared.served_models import LiveModels
from shared.settings import Settings
from shared.shared_threads import SharedThreads, drop_legacy_histories
from shared.waiting_status import WaitingStatusReader

log = logging.getLogger(__name__)


class LlamaBot(discord.Client):
    def __init__(self, settings: Settings) -> None:
        intents = discord.Intents.none()
        intents.guilds = True
        intents.guild_messages = True
        intents.dm_messages = True
        intents.message_content = True
        # Nothing the bot posts may ping anyone unless a call says so explicitly.
        super().__init__(intents=intents, allowed_mentions=discord.AllowedMentions.none())
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
        self.intake = MessageIntake(settings, queue, self.consent, self.threads, self.outbox, models=self.models)
        self.model_commands = ModelCommands(settings, self.models, queue, self.threads)
        self.commands = CommandRunner(
            settings,
            consent=self.consent,
            waiting=self.waiting,
            model_commands=self.model_commands,
            threads=self.threads,
            inspection=self.inspection,
            outbox=self.outbox,
        )
        self.slash = SlashCommands(self, self.commands, AskIntake(self.intake))
        self.unavailable = UnavailableModelNotices(self, self.redis, self.keys, self.outbox, settings.command_prefix)
        self._closing = asyncio.Event()
        self._watching: asyncio.Task[None] | None = None

    @property
    def accepted(self) -> int:
        return self.intake.accepted

    async def setup_hook(self) -> None:
        await wait_for_redis(self.redis, self.settings)
        await drop_legacy_histories(self.redis, self.keys)
        await self.slash.sync(self.redis, self.keys)
        self._watching = asyncio.create_task(self.unavailable.run(self._closing))

    async def close(self) -> None:
        self._closing.set()
        if self._watching is not None:
            self._watching.cancel()
            await asyncio.gather(self._watching, return_exceptions=True)
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

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if self.user is not None:
            await self.intake.edited(payload.message_id, payload.message, self.user.id)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.intake.deleted(payload.message_id)
