"""Parsing of the commands users type."""

from __future__ import annotations

from bot.commands.parsing import Command, parse_command
from bot.texts import help_text


def test_known_commands_parse_with_the_configured_prefix() -> None:
    assert parse_command("!optin", "!") is Command.OPTIN
    assert parse_command("  !OptOut please", "!") is Command.OPTOUT
    assert parse_command("?forget", "?") is Command.FORGET
    assert parse_command("!help", "!") is Command.HELP


def test_other_text_and_unknown_commands_are_not_commands() -> None:
    assert parse_command("!play music", "!") is None  # another bot's command
    assert parse_command("optin", "!") is None
    assert parse_command("!", "!") is None
    assert parse_command("!optin", "?") is None


def test_help_explains_every_command_and_the_ways_to_talk() -> None:
    text = help_text("!", ["llama"])
    for word in ("!optin", "!optout", "!forget", "!help", "Hey Llama", "mention", "reply", "DM"):
        assert word in text
    assert len(text) <= 2000
