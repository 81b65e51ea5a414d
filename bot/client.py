"""The discord.py client: `on_message` reads like a table of contents of what the bot does with a message."""

from __future__ import annotations

import logging
import time
from collections import OrderedDict

import discord
from redis.asyncio import Redis

from bot.admin import run_admin_command
from bot.commands import ADMIN_COMMANDS, Command, forget_text, help_text, optin_text, optout_text, parse_command
from bot.relevance import MessageFacts, addressed_text
from bot.user_locks import UserLocks
from shared.consent import ConsentRegistry
from shared.job_queue import EnqueueResult, JobQueue, QueuePolicy
from shared.keys import Keys
from shared.queue_inspection import QueueInspection
from shared.rate_limit import RequestBudget
from shared.redis_client import REDIS_DOWN_ERRORS, create_redis, wait_for_redis
from shared.schemas import Job
from shared.settings import Settings

log = logging.getLogger(__name__)

TAKEN_EMOJI = "👀"
"""Reaction meaning "your message is being answered"."""
WAITING_EMOJI = "⏳"
"""Reaction meaning "your message waits behind your earlier ones"."""

RECENT_MESSAGES_KEPT = 10_000
"""Accepted message ids remembered (in memory only) so that their edits and deletions reach the queue."""

EMPTY_QUESTION_TEXT = 'Yes? Ask me something after my name, e.g. "Hey Llama, what\'s a llama?"'

BUSY_TEXT = "I can't reach my message queue right now, so I can't take your message. Please try again in a minute."


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
        keys = Keys()
        self.queue = JobQueue(self.redis, keys, QueuePolicy.from_settings(settings))
        self.consent = ConsentRegistry(self.redis, keys)
        self.inspection = QueueInspection(self.redis, keys)
        self.recent: OrderedDict[int, str] = OrderedDict()
        self.user_locks = UserLocks()
        # Reactions are a nicety: past this budget they are skipped, so that the bot's requests and the
        # updaters' (DISCORD_REQUESTS_PER_S) together stay under Discord's global limit.
        self.reactions = RequestBudget(settings.reactions_per_s) if settings.reactions_per_s > 0 else None
        # Its own messages are not a nicety: past their budget they wait, and are never skipped.
        self.replies = RequestBudget(settings.bot_replies_per_s)
        self.accepted = 0

    async def setup_hook(self) -> None:
        await wait_for_redis(self.redis, self.settings)

    async def close(self) -> None:
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
        question = addressed_text(self.facts_of(message), self.settings.wake_words)
        if question is not None:
            await self.take_question(message, question)

    def facts_of(self, message: discord.Message) -> MessageFacts:
        assert self.user is not None
        referenced = message.reference.resolved if message.reference else None
        return MessageFacts(
            content=message.content,
            bot_id=self.user.id,
            is_dm=isinstance(message.channel, discord.DMChannel),
            # Not `message.mentions`: a reply to anyone's message lists its author there (the reply ping).
            mentions_bot=self.user.id in message.raw_mentions,
            replies_to_bot=isinstance(referenced, discord.Message) and referenced.author.id == self.user.id,
        )

    async def run_command(self, command: Command, message: discord.Message) -> None:
        user_id = str(message.author.id)
        prefix, wake_words = self.settings.command_prefix, self.settings.wake_words
        try:
            if command is Command.OPTIN:
                text = optin_text(prefix, wake_words, await self.consent.opt_in(user_id))
            elif command is Command.OPTOUT:
                text = optout_text(await self.consent.opt_out(user_id))
            elif command is Command.FORGET:
                opted_in = await self.consent.is_opted_in(user_id)
                text = forget_text(opted_in, opted_in and await self.consent.forget(user_id))
            elif command in ADMIN_COMMANDS:
                text = await run_admin_command(command, message, self.inspection, self.settings.admin_user_ids)
            else:
                text = help_text(prefix, wake_words)
        except REDIS_DOWN_ERRORS:
            log.warning("Redis unreachable during %s for user %s", command.value, user_id)
            text = BUSY_TEXT
        else:
            log.info("command %s from user %s", command.value, user_id)
        await self.reply(message, text)

    async def take_question(self, message: discord.Message, question: str) -> None:
        user_id = str(message.author.id)
        try:
            async with self.user_locks.hold(user_id):
                if not await self.consent.is_opted_in(user_id):
                    return  # nothing is stored, logged or answered for users who have not opted in
                if not question.strip():
                    await self.reply(message, EMPTY_QUESTION_TEXT)
                    return
                truncated = len(question) > self.settings.max_input_chars
                result = await self.queue.enqueue(self.job_for(message, question[: self.settings.max_input_chars]))
                log.info("message %s from user %s: %s", message.id, user_id, result.status)
        except REDIS_DOWN_ERRORS:
            log.warning("Redis unreachable: told user %s to retry message %s", user_id, message.id)
            await self.reply(message, BUSY_TEXT)
            return
        await self.acknowledge(message, result, truncated)

    def job_for(self, message: discord.Message, question: str) -> Job:
        return {
            "id": str(message.id),
            "user_id": str(message.author.id),
            "channel_id": str(message.channel.id),
            "guild_id": str(message.guild.id) if message.guild else None,
            "content": question,
            "enqueued_at": time.time(),
            "attempts": 0,
        }

    async def acknowledge(self, message: discord.Message, result: EnqueueResult, truncated: bool) -> None:
        if result.status == "full":
            await self.reply(
                message,
                (
                    f"You already have {result.waiting} messages waiting for an answer. "
                    "Please wait for my replies before sending more; I haven't queued this one."
                ),
            )
            return
        if result.status == "rate_limited":
            await self.reply(
                message,
                (
                    f"You're sending messages faster than I can answer ({result.waiting} this minute). "
                    "Please slow down; I haven't queued this one."
                ),
            )
            return
        if result.status not in ("queued", "pending"):
            return
        self.accepted += 1
        self.remember(message)
        if truncated:
            await self.reply(
                message, (f"Your message is long, so I only read its first {self.settings.max_input_chars} characters.")
            )
        await self.react(message, TAKEN_EMOJI if result.status == "queued" else WAITING_EMOJI)

    def remember(self, message: discord.Message) -> None:
        self.recent[message.id] = str(message.author.id)
        if len(self.recent) > RECENT_MESSAGES_KEPT:
            self.recent.popitem(last=False)

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        user_id = self.recent.get(payload.message_id)
        if user_id is None or self.user is None:
            return
        question = addressed_text(self.facts_of(payload.message), self.settings.wake_words)
        await self.revise(user_id, payload.message_id, question[: self.settings.max_input_chars] if question else None)

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        user_id = self.recent.pop(payload.message_id, None)
        if user_id is not None:
            await self.revise(user_id, payload.message_id, None)

    async def revise(self, user_id: str, message_id: int, question: str | None) -> None:
        """An edit changes a message that still waits; a deletion (or an edit that drops the address) withdraws it."""
        try:
            outcome = await self.queue.revise(user_id, str(message_id), question)
        except REDIS_DOWN_ERRORS:
            log.warning("Redis unreachable: edit of message %s not applied", message_id)
            return
        log.info("message %s of user %s %s: %s", message_id, user_id, "edited" if question else "withdrawn", outcome)

    async def reply(self, message: discord.Message, text: str) -> None:
        await self.replies.take()
        try:
            await message.channel.send(
                text,
                reference=message.to_reference(fail_if_not_exists=False),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            log.warning("could not reply to message %s: %s %s", message.id, exc.status, exc.text)

    async def react(self, message: discord.Message, emoji: str) -> None:
        if self.reactions is None or not self.reactions.try_take():
            log.debug("no reaction to message %s: over the reaction budget", message.id)
            return
        try:
            await message.add_reaction(emoji)
        except discord.HTTPException as exc:
            # Missing the Add Reactions permission is not worth bothering the user about.
            log.debug("could not react to message %s: %s", message.id, exc.status)
