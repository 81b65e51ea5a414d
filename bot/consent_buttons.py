"""The consent prompt's two buttons, Opt in and No thanks: one persistent view with fixed custom_ids, registered at
start-up, so that a press on a prompt sent before a restart still works. Each press is deferred before anything
touches Redis (Discord's 3 s), and only the person the prompt addresses may press."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import discord

from bot import texts
from bot.first_contact import FirstContacts
from bot.first_contact_texts import NO_THANKS_LABEL, NOT_YOURS, OPT_IN_LABEL, consent_accepted_text
from bot.slash import REQUEST_ERRORS, failure
from shared.storage.client import REDIS_DOWN_ERRORS
from shared.stores.consent import ConsentRegistry

log = logging.getLogger(__name__)

OPT_IN_ID = "llamabot:consent:opt-in"
NO_THANKS_ID = "llamabot:consent:no-thanks"

Answer = Callable[[discord.Message], Awaitable[None]]
"""Takes in a held message again, as if it had just arrived (MessageIntake.consider)."""
Press = Callable[[discord.Interaction], Awaitable[None]]


def addressee_of(prompt: discord.Message | None) -> int | None:
    """Whom a prompt asks: the one user it mentions (the prompt's own text, so that it survives a restart)."""
    mentioned = prompt.raw_mentions if prompt is not None else []
    return mentioned[0] if mentioned else None


class ConsentButtons:
    """What a press does; `view()` is what start-up registers and `template()` what a prompt is sent with."""

    def __init__(self, prefix: str, consent: ConsentRegistry, contacts: FirstContacts, answer: Answer) -> None:
        self.prefix = prefix
        self.consent = consent
        self.contacts = contacts
        self.answer = answer

    def view(self) -> ConsentView:
        return ConsentView(self)

    def template(self) -> ConsentView:
        """The buttons to send: a stopped view, so that discord.py does not keep one per prompt in memory (the
        persistent view from `view()` answers every press)."""
        view = ConsentView(self)
        view.stop()
        return view

    async def opt_in(self, interaction: discord.Interaction) -> None:
        """Opts the person in (as `!optin`), says so in the prompt, and answers the held message if still held."""
        prompt = interaction.message
        if prompt is None or not await self._deferred_for_addressee(interaction, prompt):
            return
        user_id = str(interaction.user.id)
        held = self.contacts.take(prompt.id)  # as the press found it: a slow Redis must not outlast the hold
        try:
            await self.consent.opt_in(user_id)
        except REDIS_DOWN_ERRORS:
            log.warning("Redis unreachable: an Opt in press on prompt %s was not taken", prompt.id)
            if held is not None:
                self.contacts.hold(prompt.id, held)  # for the next press
            await self._tell(interaction, texts.BUSY)
            return
        log.info("user %s opted in from consent prompt %s (message held: %s)", user_id, prompt.id, held is not None)
        try:
            await interaction.edit_original_response(
                content=consent_accepted_text(self.prefix, answering=held is not None),
                view=None,
                allowed_mentions=discord.AllowedMentions.none(),
            )
        except REQUEST_ERRORS as exc:
            log.warning("could not update consent prompt %s: %s", prompt.id, failure(exc))
        if held is not None:
            await self.answer(held)

    async def decline(self, interaction: discord.Interaction) -> None:
        """Deletes the prompt and drops the held message; no prompt for this person for a day (memory only)."""
        prompt = interaction.message
        if prompt is None or not await self._deferred_for_addressee(interaction, prompt):
            return
        self.contacts.declined(interaction.user.id)
        self.contacts.take(prompt.id)
        try:
            await interaction.delete_original_response()
        except REQUEST_ERRORS as exc:
            log.warning("could not delete consent prompt %s: %s", prompt.id, failure(exc))

    async def _deferred_for_addressee(self, interaction: discord.Interaction, prompt: discord.Message) -> bool:
        """Defers a press by the person the prompt asks (True); anyone else is told privately it isn't theirs."""
        mine = addressee_of(prompt) == interaction.user.id
        try:
            if mine:
                await interaction.response.defer()  # DEFERRED_UPDATE_MESSAGE: the prompt is edited next
            else:
                await interaction.response.send_message(NOT_YOURS, ephemeral=True)
        except REQUEST_ERRORS as exc:
            log.warning("could not answer a press on consent prompt %s: %s", prompt.id, failure(exc))
            return False
        return mine

    async def _tell(self, interaction: discord.Interaction, text: str) -> None:
        try:
            await interaction.followup.send(text, ephemeral=True, allowed_mentions=discord.AllowedMentions.none())
        except REQUEST_ERRORS as exc:
            log.warning("could not answer a press: %s", failure(exc))


class ConsentButton(discord.ui.Button["ConsentView"]):
    def __init__(self, label: str, custom_id: str, style: discord.ButtonStyle, press: Press) -> None:
        super().__init__(label=label, custom_id=custom_id, style=style)
        self._press = press

    async def callback(self, interaction: discord.Interaction) -> None:
        await self._press(interaction)


class ConsentView(discord.ui.View):
    def __init__(self, buttons: ConsentButtons) -> None:
        super().__init__(timeout=None)
        self.add_item(ConsentButton(OPT_IN_LABEL, OPT_IN_ID, discord.ButtonStyle.success, buttons.opt_in))
        self.add_item(ConsentButton(NO_THANKS_LABEL, NO_THANKS_ID, discord.ButtonStyle.secondary, buttons.decline))
