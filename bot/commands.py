"""The commands users type (`!optin`, `!optout`, `!forget`, `!help`) and the bot's texts for them."""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum


class Command(Enum):
    OPTIN = "optin"
    OPTOUT = "optout"
    FORGET = "forget"
    HELP = "help"
    # Operator commands: server administrators and ADMIN_USER_IDS only.
    STATS = "stats"
    DEAD = "dead"
    REPLAY = "replay"


ADMIN_COMMANDS = frozenset({Command.STATS, Command.DEAD, Command.REPLAY})


def parse_command(content: str, prefix: str) -> Command | None:
    """The command a message is, if any; unknown commands are left alone (other bots share prefixes)."""
    text = content.strip()
    if not text.startswith(prefix):
        return None
    name = text[len(prefix) :].split(maxsplit=1)
    if not name:
        return None
    try:
        return Command(name[0].lower())
    except ValueError:
        return None


def help_text(prefix: str, wake_words: Sequence[str]) -> str:
    wake = wake_words[0].capitalize()
    return (
        "**Hi! I'm a chat bot running a Llama-family model on this server's own hardware.**\n"
        f"I ignore everyone until they opt in. `{prefix}optin` — let me answer you "
        "(your messages to me and my answers are stored as your conversation history).\n"
        f'Then talk to me by starting a message with "Hey {wake}, …", by @mentioning me, '
        "by replying to one of my messages, or in a DM.\n"
        f"`{prefix}forget` — erase our conversation history (you stay opted in).\n"
        f"`{prefix}optout` — stop, and erase everything I stored about you.\n"
        f"`{prefix}help` — this message.\n"
        f"Administrators: `{prefix}stats` (queue figures), `{prefix}dead` (failed messages), "
        f"`{prefix}replay <id>` (retry a failed message)."
    )


def optin_text(prefix: str, wake_words: Sequence[str], newly: bool) -> str:
    start = "You're opted in." if newly else "You were already opted in."
    return (
        f'{start} Say "Hey {wake_words[0].capitalize()}, …", mention me, reply to me or DM me. '
        f"`{prefix}forget` clears our history; `{prefix}optout` stops me and erases your data."
    )


def optout_text(was_in: bool) -> str:
    if was_in:
        return "You're opted out, and everything I stored about you has been erased."
    return "You weren't opted in, so nothing is stored about you."


def forget_text(opted_in: bool, had_history: bool) -> str:
    if not opted_in:
        return "You aren't opted in, so I store nothing about you."
    return "Done: I've forgotten our conversation." if had_history else "There was no conversation to forget."
