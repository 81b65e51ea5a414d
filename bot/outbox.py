"""The bot process's own requests to Discord, each kind under its budget: its messages wait their turn, its
reactions are skipped past theirs (a nicety), so that with the updaters' budget all stay under Discord's limit."""

from __future__ import annotations

import logging
from typing import Any

import discord

from bot.slash import REQUEST_ERRORS, failure
from shared.config.settings import Settings
from shared.queues.schemas import InteractionRef
from shared.runtime.observability.metrics import DISCORD_BUDGET_WAIT_SECONDS
from shared.runtime.rate_limit import RequestBudget

log = logging.getLogger(__name__)


class Outbox:
    def __init__(self, settings: Settings, client: discord.Client) -> None:
        self.client = client
        # A bot process holding some of the shards takes that share of the bot's budgets, so that all of them
        # together stay within REACTIONS_PER_S and BOT_REPLIES_PER_S with nothing to coordinate.
        share = settings.shard_share
        self.reactions = RequestBudget(settings.reactions_per_s * share) if settings.reactions_per_s > 0 else None
        self.messages = RequestBudget(settings.bot_replies_per_s * share, waited=DISCORD_BUDGET_WAIT_SECONDS.observe)

    async def reply(self, message: discord.Message | discord.PartialMessage, text: str) -> None:
        """A reply that pings nobody; failures are logged, not raised (the bot keeps serving)."""
        await self.messages.take()
        try:
            await message.channel.send(
                text,
                reference=message.to_reference(fail_if_not_exists=False),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            log.warning("could not reply to message %s: %s %s", message.id, exc.status, exc.text)

    async def prompt(self, message: discord.Message, text: str, view: discord.ui.View) -> discord.Message | None:
        """A reply carrying buttons (the consent prompt), pinging nobody; None if Discord refused it (logged)."""
        await self.messages.take()
        try:
            return await message.channel.send(
                text,
                view=view,
                reference=message.to_reference(fail_if_not_exists=False),
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except discord.HTTPException as exc:
            log.warning("could not reply to message %s: %s %s", message.id, exc.status, exc.text)
            return None

    async def edit_interaction_original(self, reference: InteractionRef, text: str) -> None:
        """Edits an `/ask`'s original response (a notice while it waits); failures are logged, not raised."""
        await self.messages.take()
        application_id, token = int(reference["application_id"]), reference["token"].reveal()
        webhook = discord.Webhook.partial(application_id, token, client=self.client)
        edit: Any = webhook.edit_message
        try:
            await edit("@original", content=text, allowed_mentions=discord.AllowedMentions.none())
        except REQUEST_ERRORS as exc:
            log.warning("could not edit an interaction's answer: %s", failure(exc))

    async def send(self, channel: discord.abc.Messageable, text: str) -> None:
        await self.messages.take()
        try:
            await channel.send(text, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as exc:
            log.warning("could not post in a channel: %s %s", exc.status, exc.text)

    async def react(self, message: discord.Message, emoji: str) -> None:
        if self.reactions is None or not self.reactions.try_take():
            log.debug("no reaction to message %s: over the reaction budget", message.id)
            return
        try:
            await message.add_reaction(emoji)
        except discord.HTTPException as exc:
            # Missing the Add Reactions permission is not worth bothering the user about.
            log.debug("could not react to message %s: %s", message.id, exc.status)
