"""Taking a message in: whether it is for the bot, which conversation and lane it belongs to, whether the bot speaks
there and to its author, which model and persona answer it, queueing it and acknowledging it (or, for someone who
has not opted in, the consent prompt); and edits or deletions of messages that still wait."""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass

import discord

from bot import texts
from bot.attachments import read_attachments
from bot.first_contact import ConsentPrompts
from bot.first_contact_texts import answered_instead_text
from bot.lane_locks import LaneLocks
from bot.message_extras import Extras, needs_reading
from bot.outbox import Outbox
from bot.places import Places
from bot.relevance import MessageFacts, addressed_text, speaker_name
from bot.replies import quote
from shared.config.settings import Settings
from shared.queues.conversation_ids import private_conversation, shared_conversation
from shared.queues.job_queue import EnqueueResult, JobQueue
from shared.queues.jobs import new_job
from shared.queues.reactions import WAITING_EMOJI
from shared.queues.schemas import Job
from shared.runtime.observability.metrics import MESSAGES
from shared.storage.client import REDIS_DOWN_ERRORS
from shared.stores.channel_access import ChannelAccess, access_fields, may_speak
from shared.stores.consent import ConsentRegistry
from shared.stores.model_choice import ModelChoices, Route
from shared.stores.personas import PersonaInForce, persona_fields, persona_in_force
from shared.stores.places import Place
from shared.stores.role_access import role_allowed, role_fields
from shared.stores.shared_threads import SharedThreads

log = logging.getLogger(__name__)

RECENT_MESSAGES_KEPT = 10_000
"""Accepted message ids remembered (in memory only) so that their edits and deletions reach the queue."""


@dataclass(frozen=True)
class Destination:
    """Where a message's exchange is kept (conversation), where it waits its turn (lane), and whose choice of model
    answers it (chooser: its author, or whoever opened the shared thread; None once they opted out)."""

    conversation: str
    lane: str
    shared: bool
    chooser: str | None

    @classmethod
    def private(cls, message: discord.Message) -> Destination:
        user = str(message.author.id)
        return cls(private_conversation(str(message.channel.id), user), user, shared=False, chooser=user)

    @classmethod
    def thread(cls, thread_id: int, starter: str | None) -> Destination:
        conversation = shared_conversation(str(thread_id))
        return cls(conversation, conversation, shared=True, chooser=starter)


@dataclass(frozen=True)
class Reading:
    """What the one read before queueing a message found: its model, the persona in force, whether the bot speaks
    there, and whether it answers its author there (the server's role list)."""

    route: Route
    persona: PersonaInForce
    may_speak: bool
    answers_author: bool = True


def roles_of(author: discord.User | discord.Member) -> tuple[list[str], bool]:
    """(the roles a message's author holds in its server, whether they administer it); none in a DM."""
    if not isinstance(author, discord.Member):
        return [], False
    return [str(role.id) for role in author.roles], author.guild_permissions.administrator


def carry_persona(job: Job, reading: Reading, place: Place) -> None:
    """Puts the persona in force (and the server's name, for `{server}`) in the job, if one is set."""
    if reading.persona.text is not None:
        job["system_prompt"] = reading.persona.text
        if place.guild_name is not None:
            job["server_name"] = place.guild_name


def facts_of(message: discord.Message, bot_id: int, *, in_shared_thread: bool = False) -> MessageFacts:
    referenced = message.reference.resolved if message.reference else None
    return MessageFacts(
        content=message.content,
        bot_id=bot_id,
        is_dm=isinstance(message.channel, discord.DMChannel),
        # Not `message.mentions`: a reply to anyone's message lists its author there (the reply ping).
        mentions_bot=bot_id in message.raw_mentions,
        replies_to_bot=isinstance(referenced, discord.Message) and referenced.author.id == bot_id,
        in_shared_thread=in_shared_thread,
    )


def may_be_shared_thread(channel: object, bot_id: int) -> bool:
    """Whether the channel could be a thread the bot opened: one it knows it owns, or a server channel discord.py
    has not seen (a thread opened before a restart). Only these cost a Redis read for every message in them."""
    if isinstance(channel, discord.Thread):
        return channel.owner_id == bot_id
    return isinstance(channel, discord.PartialMessageable) and channel.guild_id is not None


class MessageIntake:
    def __init__(
        self,
        settings: Settings,
        queue: JobQueue,
        consent: ConsentRegistry,
        threads: SharedThreads,
        outbox: Outbox,
        *,
        models: ModelChoices,
        access: ChannelAccess,
        places: Places,
        prompts: ConsentPrompts,
    ) -> None:
        self.settings = settings
        self.queue = queue
        self.models = models
        self.access = access
        self.places = places
        self.consent = consent
        self.threads = threads
        self.outbox = outbox
        self.prompts = prompts
        self.locks = LaneLocks()
        self.recent: OrderedDict[int, tuple[str, Destination]] = OrderedDict()
        self.accepted = 0

    async def consider(self, message: discord.Message, bot_id: int) -> None:
        """Queues the message if it is an opted-in user's message for the bot; ignores it otherwise."""
        if not may_be_shared_thread(message.channel, bot_id):
            question = addressed_text(facts_of(message, bot_id), self.settings.wake_words)
            if question is not None:
                destination = Destination.private(message)
                async with self.locks.hold(destination.lane):
                    await self.take(message, question, destination, bot_id=bot_id, consent_checked=False)
            return
        # Every message of a shared thread is for the bot: the thread's lock keeps its speakers in order.
        async with self.locks.hold(shared_conversation(str(message.channel.id))):
            await self._consider_in_thread(message, bot_id)

    async def _consider_in_thread(self, message: discord.Message, bot_id: int) -> None:
        user_id = str(message.author.id)
        try:
            opted_in, shared, starter = await self._consent_and_sharing(user_id, message.channel.id)
        except REDIS_DOWN_ERRORS:
            if addressed_text(facts_of(message, bot_id, in_shared_thread=True), self.settings.wake_words) is not None:
                MESSAGES.labels("busy").inc()
                log.warning("Redis unreachable: told user %s to retry message %s", user_id, message.id)
                await self.outbox.reply(message, texts.BUSY)
            return
        if not opted_in:
            await self._newcomer_in_thread(message, bot_id)
            return
        question = addressed_text(facts_of(message, bot_id, in_shared_thread=shared), self.settings.wake_words)
        if question is not None:
            destination = Destination.thread(message.channel.id, starter) if shared else Destination.private(message)
            await self.take(message, question, destination, bot_id=bot_id, consent_checked=True)

    async def _newcomer_in_thread(self, message: discord.Message, bot_id: int) -> None:
        """Someone who has not opted in, in a thread that may be shared: prompted if they address the bot (every
        message in a shared thread does); nothing of them is stored, logged or answered otherwise."""
        if not self.prompts.due(message):
            return
        try:
            shared, starter = await self.threads.sharing(str(message.channel.id))
        except REDIS_DOWN_ERRORS:
            return
        question = addressed_text(facts_of(message, bot_id, in_shared_thread=shared), self.settings.wake_words)
        if question is not None:
            destination = Destination.thread(message.channel.id, starter) if shared else Destination.private(message)
            await self.take(message, question, destination, bot_id=bot_id, consent_checked=False)

    async def _consent_and_sharing(self, user_id: str, channel_id: int) -> tuple[bool, bool, str | None]:
        """Whether the user opted in, and (only then) whether the channel is a shared thread and who opened it."""
        if not await self.consent.is_opted_in(user_id):
            return False, False, None
        return True, *await self.threads.sharing(str(channel_id))

    async def take(
        self, message: discord.Message, question: str, destination: Destination, *, bot_id: int, consent_checked: bool
    ) -> None:
        user_id = str(message.author.id)
        try:
            place = await self.places.of(message)
            reading = await self.read(destination, place, message.author)
            if not reading.answers_author:
                return  # not one of the server's allowed roles: ignored, nothing stored or logged
            if not reading.may_speak:
                await self.hint(message, place)
                return
            if needs_reading(message, bot_id):
                # Files, and a message replied to that Discord did not send or that someone else wrote, are read
                # for opted-in people only: ask first (the enqueue script would refuse them only afterwards).
                if not consent_checked and not await self.consent.is_opted_in(user_id):
                    await self.prompts.offer(message)
                    return
                consent_checked = True
            extras = await self.extras(message, bot_id)
            question = extras.attached.question(question)
            if not question.strip() and not extras.images:
                # The enqueue script checks consent itself; only the hint needs it asked first.
                if consent_checked or await self.consent.is_opted_in(user_id):
                    await self.outbox.reply(message, texts.EMPTY_QUESTION)
                else:
                    await self.prompts.offer(message)
                return
            truncated = len(question) > self.settings.max_input_chars
            job = self.job_for(message, question[: self.settings.max_input_chars], destination, place, reading)
            extras.carry(job)
            result = await self.queue.enqueue(job)
            if result.status == "not_shared":  # the thread was forgotten a moment ago: a private exchange, then
                destination = Destination.private(message)
                reading = await self.read(destination, place, message.author)
                retry = self.job_for(message, job["content"], destination, place, reading)
                extras.carry(retry)
                result = await self.queue.enqueue(retry)
            MESSAGES.labels(result.status).inc()  # a count of outcomes, never of who
            if result.status == "not_opted_in":
                # Nothing is stored or logged for users who have not opted in; they may get the consent prompt.
                await self.prompts.offer(message)
                return
            log.info("message %s from user %s: %s", message.id, user_id, result.status)
        except REDIS_DOWN_ERRORS:
            MESSAGES.labels("busy").inc()
            log.warning("Redis unreachable: told user %s to retry message %s", user_id, message.id)
            await self.outbox.reply(message, texts.BUSY)
            return
        await self.acknowledge(message, result, destination, truncated)
        if extras.notes and result.status in ("queued", "pending"):
            await self.outbox.reply(message, "\n".join(f"-# {note}" for note in extras.notes))
        unserved = reading.route.unserved_choice
        if unserved and result.status in ("queued", "pending"):
            note = answered_instead_text(
                unserved, reading.route.model, self.settings.command_prefix, in_thread=destination.shared
            )
            await self.outbox.reply(message, note)

    async def extras(self, message: discord.Message, bot_id: int) -> Extras:
        """What the message's files and the message it replies to add (the author opted in, or nothing is read)."""
        settings = self.settings
        attached = await read_attachments(message.attachments, max_images=settings.max_images)
        quoted, notes = await quote(
            message,
            bot_id,
            self.consent.is_opted_in,
            max_images=settings.max_images,
            max_chars=settings.max_input_chars,
        )
        return Extras(attached, quoted, [*attached.notes, *notes])

    async def read(
        self, destination: Destination, place: Place, author: discord.User | discord.Member | None = None
    ) -> Reading:
        """The model, persona and access (channel, and the author's roles) that apply to a message, in one round
        trip (shared/stores/model_choice.py)."""
        roles, administrator = roles_of(author) if author is not None else ([], False)
        fields = [*persona_fields(place), *access_fields(place), *role_fields(place, roles)]
        route, values = await self.models.route_reading(destination.chooser, place.guild_id, fields)
        speaks = may_speak(values, place, allow_dms=self.settings.allow_dms)
        answers = role_allowed(values, roles, administrator=administrator)
        return Reading(route, persona_in_force(values, place), speaks, answers)

    async def hint(self, message: discord.Message, place: Place) -> None:
        """Tells an opted-in user, once an hour per channel, that the bot does not answer there; nothing else of the
        message is stored (shared/stores/channel_access.py)."""
        allowed = await self.access.hint_due(str(message.author.id), place)
        if allowed is None:
            return
        log.info("message %s from user %s: not answered in channel %s", message.id, message.author.id, place.channel_id)
        prefix = self.settings.command_prefix
        await self.outbox.reply(message, texts.not_here_text(allowed) if place.guild_id else texts.no_dms_text(prefix))

    def job_for(
        self, message: discord.Message, question: str, destination: Destination, place: Place, reading: Reading
    ) -> Job:
        """The job for a message, routed to its model (see shared/stores/model_choice.py), carrying its persona."""
        job = new_job(
            str(message.id),
            str(message.author.id),
            str(message.channel.id),
            question,
            guild_id=place.guild_id,
            conversation=destination.conversation,
            lane=destination.lane,
            model=reading.route.model,
        )
        if destination.shared:
            job["author_name"] = speaker_name(message.author.display_name, fallback=message.author.name)
        carry_persona(job, reading, place)
        return job

    async def acknowledge(
        self, message: discord.Message, result: EnqueueResult, destination: Destination, truncated: bool
    ) -> None:
        if result.status == "full":
            await self.outbox.reply(message, texts.full_text(result.waiting))
            return
        if result.status == "lane_full":
            await self.outbox.reply(message, texts.lane_full_text(result.waiting))
            return
        if result.status == "rate_limited":
            await self.outbox.reply(message, texts.rate_limited_text(result.waiting))
            return
        if result.status not in ("queued", "pending"):
            return
        self.accepted += 1
        self.remember(message, destination)
        if truncated:
            await self.outbox.reply(message, texts.truncated_text(self.settings.max_input_chars))
        await self.outbox.react(message, WAITING_EMOJI)  # an updater swaps it for 👀 once a runner starts on it

    def remember(self, message: discord.Message, destination: Destination) -> None:
        self.recent[message.id] = (str(message.author.id), destination)
        if len(self.recent) > RECENT_MESSAGES_KEPT:
            self.recent.popitem(last=False)

    async def edited(self, message_id: int, message: discord.Message, bot_id: int) -> None:
        """An edit changes a message that still waits; one that drops the address withdraws it."""
        known = self.recent.get(message_id)
        if known is None:
            return
        user_id, destination = known
        facts = facts_of(message, bot_id, in_shared_thread=destination.shared)
        question = addressed_text(facts, self.settings.wake_words)
        await self._revise(
            user_id, destination, message_id, question[: self.settings.max_input_chars] if question else None
        )

    async def deleted(self, message_id: int) -> None:
        known = self.recent.pop(message_id, None)
        if known is not None:
            await self._revise(known[0], known[1], message_id, None)

    async def _revise(self, user_id: str, destination: Destination, message_id: int, question: str | None) -> None:
        try:
            outcome = await self.queue.revise(destination.lane, str(message_id), question)
        except REDIS_DOWN_ERRORS:
            log.warning("Redis unreachable: edit of message %s not applied", message_id)
            return
        log.info("message %s of user %s %s: %s", message_id, user_id, "edited" if question else "withdrawn", outcome)
