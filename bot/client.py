"""The discord.py client: its event handlers read like a table of contents of what the bot does."""

from __future__ import annotations

import asyncio
import logging

import discord
from redis.asyncio import Redis

from bot import texts
from bot.admin import run_admin_command
from bot.chat_threads import open_chat
from bot.commands import ADMIN_COMMANDS, Command, command_argument, parse_command
from bot.intake import MessageIntake
from bot.model_commands import ModelCommands
from bot.outbox import Outbox
from bot.unavailable_models import UnavailableModelNotices
from shared.consent import ConsentRegistry
from shared.job_queue import JobQueue
from shared.keys import Keys
from shared.model_choice import ModelChoices
from shared.queue_inspection import QueueInspection
from shared.redis_client import REDIS_DOWN_ERRORS, create_redis, wait_for_redis
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
        self.outbox = Outbox(settings)
        self.models = ModelChoices(self.redis, self.keys, LiveModels(self.redis, self.keys), settings.default_model)
        queue = JobQueue(self.redis, self.keys, settings)
        self.intake = MessageIntake(settings, queue, self.consent, self.threads, self.outbox, models=self.models)
        self.model_commands = ModelCommands(settings, self.models, queue, self.threads)
        self.unavailable = UnavailableModelNotices(self, self.redis, self.keys, self.outbox, settings.command_prefix)
        self._closing = asyncio.Event()
        self._watching: asyncio.Task[None] | None = None

    @property
    def accepted(self) -> int:
        return self.intake.accepted

    async def setup_hook(self) -> None:
        await wait_for_redis(self.redis, self.settings)
        await drop_legacy_histories(self.redis, self.keys)
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
            await self.run_command(command, message)
            return
        await self.intake.consider(message, self.user.id)

    async def run_command(self, command: Command, message: discord.Message) -> None:
        user_id = str(message.author.id)
        prefix, wake_words = self.settings.command_prefix, self.settings.wake_words
        text: str | None
        try:
            if command is Command.OPTIN:
                text = texts.optin_text(prefix, wake_words, await self.consent.opt_in(user_id))
            elif command is Command.OPTOUT:
                text = texts.optout_text(await self.consent.opt_out(user_id))
            elif command is Command.FORGET:
                opted_in = await self.consent.is_opted_in(user_id)
                text = texts.forget_text(opted_in, opted_in and await self.consent.forget(user_id))
            elif command is Command.STATUS:
                text = texts.status_text(await self.waiting.status_of(user_id))
            elif command in (Command.MODELS, Command.MODEL):
                text = await self.model_commands.run(command, message, self.user.id if self.user else 0)
            elif command is Command.CHAT:
                text = await open_chat(
                    message,
                    command_argument(message.content),
                    prefix=prefix,
                    consent=self.consent,
                    threads=self.threads,
                    outbox=self.outbox,
                )
            elif command in ADMIN_COMMANDS:
                text = await run_admin_command(command, message, self.inspection, self.settings.admin_user_ids)
            else:
                text = texts.help_text(prefix, wake_words)
        except REDIS_DOWN_ERRORS:
            log.warning("Redis unreachable during %s for user %s", command.value, user_id)
            text = texts.BUSY
        else:
            log.info("command %s from user %s", command.value, user_id)
        if text is not None:
            await self.outbox.reply(message, text)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if self.user is not None:
            await self.intake.edited(payload.message_id, payload.message, self.user.id)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        await self.intake.deleted(payload.message_id)
