"""Splitting an answer into Discord-sized messages without breaking code blocks or words where avoidable."""

from __future__ import annotations

import re

from shared.config.defaults import DISCORD_MESSAGE_LIMIT_CHARS

_FENCE = re.compile(r"^\s*```(\S*)")


def split_message(text: str, limit: int = DISCORD_MESSAGE_LIMIT_CHARS) -> list[str]:
    """Parts of at most `limit` characters, split at line ends, then spaces, then anywhere.

    A code block cut in two is closed at the end of one part and reopened (same language) in the
    next, so each part renders on its own.
    """
    text = text.strip()
    if len(text) <= limit:
        return [text] if text else []
    parts: list[str] = []
    reopen = ""  # the fence line to start the next part with, when a code block continues
    rest = text
    while rest:
        room = limit - len(reopen)
        if len(rest) <= room:
            parts.append(reopen + rest)
            break
        # Leave room to close a code block that the cut would leave open.
        cut = _cut_point(rest, room - 4)
        chunk, rest = rest[:cut], rest[cut:].lstrip("\n")
        language = open_fence_language(reopen + chunk)
        if language is None:
            parts.append((reopen + chunk).rstrip())
            reopen = ""
        else:
            parts.append((reopen + chunk).rstrip() + "\n```")
            reopen = f"```{language}\n"
    return [p for p in parts if p.strip()]


def _cut_point(text: str, room: int) -> int:
    for separator in ("\n\n", "\n", " "):
        index = text.rfind(separator, 0, room)
        if index > room // 2:
            return index + len(separator)
    return room


def open_fence_language(text: str) -> str | None:
    """The language of a code block left open at the end of `text` ("" if none given), else None."""
    language: str | None = None
    for line in text.splitlines():
        match = _FENCE.match(line)
        if match:
            language = None if language is not None else match.group(1)
    return language
