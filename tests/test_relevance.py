"""Which messages are addressed to the bot, and what is left of them to answer."""

from __future__ import annotations

import pytest

from bot.relevance import MessageFacts, addressed_text, clean_text

BOT_ID = 1234


def facts(content: str, *, dm: bool = False, mention: bool = False, reply: bool = False) -> MessageFacts:
    return MessageFacts(content=content, bot_id=BOT_ID, is_dm=dm, mentions_bot=mention, replies_to_bot=reply)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("Hey Llama, what are the train lines in Boston?", "what are the train lines in Boston?"),
        ("llama: tell me a joke", "tell me a joke"),
        ("LLAMA what's 2+2", "what's 2+2"),
        ("ok so llama, is it raining?", "is it raining?"),
        ("Hey Llama", ""),
    ],
)
def test_wake_word_near_the_start_addresses_the_bot(content: str, expected: str) -> None:
    assert addressed_text(facts(content), ["llama"]) == expected


@pytest.mark.parametrize(
    "content",
    [
        "I saw a llama at the zoo yesterday, it was great",  # the word, but not near the start
        "llamas are cool",  # not the word itself
        "hello everyone",
        "",
    ],
)
def test_other_messages_are_not_addressed(content: str) -> None:
    assert addressed_text(facts(content), ["llama"]) is None


def test_mention_dm_and_reply_address_the_bot_without_wake_word() -> None:
    assert addressed_text(facts(f"<@{BOT_ID}> what time is it?", mention=True), ["llama"]) == "what time is it?"
    assert addressed_text(facts(f"<@!{BOT_ID}>, hi", mention=True), ["llama"]) == "hi"
    assert addressed_text(facts("what time is it?", dm=True), ["llama"]) == "what time is it?"
    assert addressed_text(facts("and then?", reply=True), ["llama"]) == "and then?"


def test_configured_wake_words_replace_the_default() -> None:
    assert addressed_text(facts("Hey Bob, hi"), ["bob", "robot"]) == "hi"
    assert addressed_text(facts("Hey Llama, hi"), ["bob", "robot"]) is None


def test_invisible_characters_are_removed_and_cannot_hide_the_wake_word() -> None:
    assert clean_text("a\u200bb\u202ec\x00d\u2066e") == "abcde"
    assert addressed_text(facts("Hey L\u200blama, hi\x00"), ["llama"]) == "hi"
