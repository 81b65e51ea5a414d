"""Deciding whether a message is addressed to the bot, and what it asks once the address is removed."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

WAKE_WORD_WINDOW_WORDS = 3
"""The wake word counts when it is among the first few words ("Hey Llama", "ok so llama, ...")."""

SPEAKER_NAME_MAX_CHARS = 32
"""Discord's own limit on display names; a longer one is cut rather than let into the prompt."""

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
    in_shared_thread: bool = False
    """In a thread the bot opened with `!chat`: every message there is for the bot."""


def clean_text(text: str) -> str:
    """Drops NUL, zero-width and bidi control characters, which can hide a wake word or confuse a model."""
    return _INVISIBLE.sub("", text)


def speaker_name(display_name: str, fallback: str) -> str:
    """A display name as the model sees it in a shared thread: one line, no invisible characters, bounded."""
    name = " ".join(clean_text(display_name).split())[:SPEAKER_NAME_MAX_CHARS].strip()
    return name or fallback


def strip_bot_mentions(text: str, bot_id: int) -> str:
    return re.sub(rf"<@!?{bot_id}>", " ", text)


def addressed_text(facts: MessageFacts, wake_words: Sequence[str]) -> str | None:
    """The question, if the message is meant for the bot; None if it is not.

    The result may be empty (e.g. just "Hey Llama"), which the caller answers with a hint.
    """
    text = clean_text(facts.content)
    directly = facts.is_dm or facts.mentions_bot or facts.replies_to_bot or facts.in_shared_thread
    without_mentions = strip_bot_mentions(text, facts.bot_id).strip()
    after_wake = _after_wake_word(without_mentions, wake_words)
    if after_wake is not None:
        return after_wake
    if directly:
        return _LEADING_PUNCT.sub("", without_mentions).strip()
    return None


def thread_name(topic: str, starter: str, limit: int = 100) -> str:
    """The name of a thread opened by `!chat`: the topic (or who opened it), cut at a word within Discord's 100."""
    name = " ".join(clean_text(topic).split()) or f"Chat with {starter}"
    if len(name) <= limit:
        return name
    cut = name.rfind(" ", 0, limit - 1)
    return name[: cut if cut > limit // 2 else limit - 1].rstrip() + "…"


def _after_wake_word(text: str, wake_words: Sequence[str]) -> str | None:
    words = list(re.finditer(r"\w+", text))[:WAKE_WORD_WINDOW_WORDS]
    for match in words:
        if match.group().lower() in wake_words:
            return _LEADING_PUNCT.sub("", text[match.end() :]).strip()
    return None
