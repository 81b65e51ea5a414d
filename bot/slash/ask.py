"""`/ask <question>`: a question without a message. It is deferred before anything else (Discord's 3 s hold even
while Redis is slow), then queued like a message in the user's own conversation in that channel; the updater posts
the answer through the interaction, whose token travels with the job as a Secret."""

from __future__ import annotations

import logging

import discord

from bot import texts
from bot.intake import Destination, MessageIntake, carry_persona
from bot.slash import REQUEST_ERRORS, failure
from shared.config.secret import Secret
from shared.queues.jobs import new_job
from shared.queues.schemas import InteractionRef, Job
from shared.runtime.observability.metrics import MESSAGES
from shared.storage.client import REDIS_DOWN_ERRORS

log = logging.getLogger(__name__)

TOKEN_LIFETIME_S = 15 * 60
"""An interaction's token works for 15 minutes after the interaction was created."""

NOT_AMONG_ROLES = "On this server I answer only members holding certain roles, and you hold none of them."

REFUSALS = {
    "full": texts.full_text,
    "lane_full": texts.lane_full_text,
    "rate_limited": texts.rate_limited_text,
}


class AskIntake:
    def __init__(self, intake: MessageIntake) -> None:
        self.intake = intake

    async def ask(self, interaction: discord.Interaction, question: str) -> None:
        try:
            deferred = await interaction.response.defer(thinking=True)
        except REQUEST_ERRORS as exc:
            log.warning("could not defer interaction %s: %s", interaction.id, failure(exc))
            return
        original_id = deferred.message_id if deferred is not None else None
        user_id = str(interaction.user.id)
        settings = self.intake.settings
        question = question.strip()[: settings.max_input_chars]
        try:
            async with self.intake.locks.hold(user_id):
                if not question:
                    opted_in = await self.intake.consent.is_opted_in(user_id)
                    await self._privately(interaction, texts.EMPTY_ASK if opted_in else texts.ask_needs_optin_text())
                    return
                job = await self._job(interaction, question, original_id)
                if isinstance(job, str):
                    await self._privately(interaction, job)
                    return
                result = await self.intake.queue.enqueue(job)
        except REDIS_DOWN_ERRORS:
            MESSAGES.labels("busy").inc()
            log.warning("Redis unreachable: told user %s to retry interaction %s", user_id, interaction.id)
            await self._privately(interaction, texts.BUSY)
            return
        MESSAGES.labels(result.status).inc()  # a count of outcomes, never of who
        if result.status == "not_opted_in":
            await self._privately(interaction, texts.ask_needs_optin_text())  # and nothing is stored or logged
            return
        log.info("interaction %s from user %s: %s", interaction.id, user_id, result.status)
        refusal = REFUSALS.get(result.status)
        if refusal is not None:
            await self._privately(interaction, refusal(result.waiting))
        elif result.status in ("queued", "pending"):
            self.intake.accepted += 1

    def _not_here(self, interaction: discord.Interaction) -> str:
        """Where the bot does not answer (shared/stores/channel_access.py), /ask is refused privately."""
        return texts.not_here_text([]) if interaction.guild_id else texts.no_dms_text("/")

    async def _job(self, interaction: discord.Interaction, question: str, original_id: int | None) -> Job | str:
        """The job: the user's private conversation in that channel, their lane, their model and the persona in
        force there (read in one round trip), the interaction; where the bot does not answer them, why not."""
        user_id, channel_id = str(interaction.user.id), str(interaction.channel_id)
        guild_id = str(interaction.guild_id) if interaction.guild_id else None
        reference: InteractionRef = {
            "application_id": str(interaction.application_id),
            "token": Secret(interaction.token),
            "expires_at": interaction.created_at.timestamp() + TOKEN_LIFETIME_S,
        }
        if original_id is not None:
            reference["original_id"] = str(original_id)
        job = new_job(str(interaction.id), user_id, channel_id, question, guild_id=guild_id)
        job["interaction"] = reference
        channel = interaction.channel or interaction.client.get_partial_messageable(
            interaction.channel_id or 0, guild_id=interaction.guild_id
        )
        place = await self.intake.places.at(interaction.guild, channel)
        destination = Destination(job["conversation"], user_id, shared=False, chooser=user_id)
        reading = await self.intake.read(destination, place, interaction.user)
        if not reading.answers_author:
            return NOT_AMONG_ROLES
        if not reading.may_speak:
            return self._not_here(interaction)
        if reading.route.model is not None:
            job["model"] = reading.route.model
        carry_persona(job, reading, place)
        return job

    @staticmethod
    async def _privately(interaction: discord.Interaction, text: str) -> None:
        """Replaces the public "thinking…" with a message only the user sees (a deferral's own answer would be as
        public as the deferral)."""
        try:
            await interaction.delete_original_response()
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
        except REQUEST_ERRORS as exc:
            log.warning("could not answer interaction %s: %s", interaction.id, failure(exc))
