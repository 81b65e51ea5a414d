"""First contact: someone who has not opted in addresses the bot and gets one short prompt with Opt in / No thanks.

Everything the bot remembers of them lives in this process's memory only, never in Redis (nothing may be stored
about a person who has not opted in): whom it prompted where and when, who said no thanks, and the message each
prompt holds so that Opt in can answer it. A restart forgets all of it (and may prompt again).
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import discord

from bot.first_contact_texts import consent_prompt_text
from bot.outbox import Outbox
from shared.config.settings import Settings
from shared.runtime.observability.metrics import MESSAGES

log = logging.getLogger(__name__)

PROMPT_INTERVAL_S = 3600.0
"""At most one prompt per person per channel this often."""

DECLINED_QUIET_S = 86400.0
"""Someone who pressed No thanks is not prompted again for this long."""

REMEMBERED = 10_000
"""Entries of each kind kept at most (the oldest go first), so that memory stays bounded whoever writes."""

Clock = Callable[[], float]


@dataclass(frozen=True)
class Held:
    message: discord.Message
    until: float


def _bounded_set(entries: OrderedDict[object, float], key: object, value: float) -> None:
    entries[key] = value
    entries.move_to_end(key)
    while len(entries) > REMEMBERED:
        entries.popitem(last=False)


class FirstContacts:
    """Who was prompted where and when, who declined, and the held messages: in memory, bounded, each expiring."""

    def __init__(self, hold_s: float, clock: Clock = time.monotonic) -> None:
        self.hold_s = hold_s
        self._clock = clock
        self._prompted: OrderedDict[object, float] = OrderedDict()
        self._declined: OrderedDict[object, float] = OrderedDict()
        self._held: OrderedDict[int, Held] = OrderedDict()

    def due(self, user_id: int, channel_id: int) -> bool:
        """Whether a prompt may go to this person in this channel now (none within the hour, no recent No thanks)."""
        now = self._clock()
        declined = self._declined.get(user_id)
        if declined is not None and now - declined < DECLINED_QUIET_S:
            return False
        prompted = self._prompted.get((user_id, channel_id))
        return prompted is None or now - prompted >= PROMPT_INTERVAL_S

    def prompted(self, user_id: int, channel_id: int) -> None:
        _bounded_set(self._prompted, (user_id, channel_id), self._clock())

    def declined(self, user_id: int) -> None:
        _bounded_set(self._declined, user_id, self._clock())

    def hold(self, prompt_id: int, message: discord.Message) -> None:
        """Keeps the message that prompted `prompt_id` for CONSENT_HOLD_S (none with 0)."""
        self._drop_expired()
        if self.hold_s > 0:
            self._held[prompt_id] = Held(message, self._clock() + self.hold_s)
            while len(self._held) > REMEMBERED:
                self._held.popitem(last=False)

    def take(self, prompt_id: int) -> discord.Message | None:
        """The message a prompt holds (and no longer holds), or None once it expired or was never held here."""
        self._drop_expired()
        held = self._held.pop(prompt_id, None)
        return held.message if held is not None else None

    def _drop_expired(self) -> None:
        now = self._clock()
        while self._held:
            prompt_id, held = next(iter(self._held.items()))
            if held.until > now:
                return
            del self._held[prompt_id]


class ConsentPrompts:
    """Sends the prompt (with the buttons of bot/consent_buttons.py) when one is due; logs no one's id."""

    def __init__(self, settings: Settings, outbox: Outbox, contacts: FirstContacts, view: discord.ui.View) -> None:
        self.settings = settings
        self.outbox = outbox
        self.contacts = contacts
        self.view = view

    @property
    def enabled(self) -> bool:
        return self.settings.consent_prompt

    def due(self, message: discord.Message) -> bool:
        return self.enabled and self.contacts.due(message.author.id, message.channel.id)

    async def offer(self, message: discord.Message) -> None:
        """Prompts the author of a message addressed to the bot, who has not opted in, if a prompt is due."""
        if not self.due(message):
            return
        self.contacts.prompted(message.author.id, message.channel.id)
        text = consent_prompt_text(message.author.id, self.settings.command_prefix, self.settings.history_ttl_days)
        sent = await self.outbox.prompt(message, text, self.view)
        if sent is None:
            return
        MESSAGES.labels("consent_prompt").inc()
        self.contacts.hold(sent.id, message)
        log.info("consent prompt %s sent in channel %s", sent.id, message.channel.id)
