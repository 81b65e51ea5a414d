"""The commands people type (`!optin`, `!chat topic`, ...): recognising them in a message."""

from __future__ import annotations

import re
from enum import Enum


class Command(Enum):
    OPTIN = "optin"
    OPTOUT = "optout"
    FORGET = "forget"
    HELP = "help"
    CHAT = "chat"
    STATUS = "status"
    MODELS = "models"
    MODEL = "model"
    PERSONA = "persona"  # `show` for anyone; `set` and `reset` for administrators
    CHANNELS = "channels"  # administrators only
    ACCESS = "access"  # administrators only
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


CHANNEL_MENTION = re.compile(r"<#(\d+)>")


def leading_channel(text: str) -> tuple[str | None, str]:
    """A channel mention at the start of `text`, and what follows it ("<#5> be terse" -> ("5", "be terse"))."""
    match = CHANNEL_MENTION.match(text)
    if match is None:
        return None, text
    return match.group(1), text[match.end() :].strip()


def command_argument(content: str) -> str:
    """What follows the command word ("!chat trip to Peru" -> "trip to Peru")."""
    parts = content.strip().split(maxsplit=1)
    return parts[1].strip() if len(parts) == 2 else ""
