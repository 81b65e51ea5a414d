"""Deciding whether a message is addressed to the bot, and what it asks once the address is removed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

WAKE_WORD_WINDOW_WORDS = 3
"""The wake word counts when it is among the first few words ("Hey Llama", "ok so llama, ...")."""

_INVISIBLE = re.compile(r"[\u0000\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]")
_LEADING_PUNCT = re.compile(r"^[\s,:;.!?\-–—]+")


@dataclass(frozen=True)
class MessageFacts:
    """What relevance depends on, taken from a Discord message so the rules stay pure."""

    content: str
    bot_id: int
    is_dm: bool
    mentions_bot: bool
    replies_to_bot: bool


def clean_text(text: str) -> str:
    """Drops NUL, zero-width and bidi control characters, which can hide a wake word or confuse a model."""
    return _INVISIBLE.sub("", text)


def strip_bot_mentions(text: str, bot_id: int) -> str:
    return re.sub(rf"<@!?{bot_id}>", " ", text)


def addressed_text(facts: MessageFacts, wake_words: Sequence[str]) -> str | None:
    """The question, if the message is meant for the bot; None if it is not.

    The result may be empty (e.g. just "Hey Llama"), which the caller answers with a hint.
    """
    text = clean_text(facts.content)
    directly = facts.is_dm or facts.mentions_bot or facts.replies_to_bot
    without_mentions = strip_bot_mentions(text, facts.bot_id).strip()
    after_wake = _after_wake_word(without_mentions, wake_words)
    if after_wake is not None:
        return after_wake
    if directly:
        return _LEADING_PUNCT.sub("", without_mentions).strip()
    return None


def _after_wake_word(text: str, wake_words: Sequence[str]) -> str | None:
    words = list(re.finditer(r"\w+", text))[:WAKE_WORD_WINDOW_WORDS]
    for match in words:
        if match.group().lower() in wake_words:
            return _LEADING_PUNCT.sub("", text[match.end() :]).strip()
    return None
