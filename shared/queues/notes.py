"""One-line notes shown above an answer as Discord subtext (`-# ...`): what the model did not see, and why. The runner
puts them above the partial texts it streams and the updater above the final text, so both show the same first
lines (and the parts the text is cut into stay the same from the first partial to the final text)."""

from __future__ import annotations

import re
from collections.abc import Sequence

SUBTEXT = "-# "
NOTE_MAX_CHARS = 200
"""Longest note; a longer one is cut (a file name may be long)."""
NOTES_MAX = 6
"""Most notes shown; past it one line says how many more there were. With NOTE_MAX_CHARS: ~1,250 characters at
most, so the notes and the start of the answer share its first message (Discord's 2,000)."""

_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]+")


def one_line(text: str, limit: int = NOTE_MAX_CHARS) -> str:
    """`text` on one line of at most `limit` characters: line breaks and control characters become spaces."""
    flat = " ".join(_UNPRINTABLE.sub(" ", text).split())
    return flat if len(flat) <= limit else flat[: limit - 1].rstrip() + "…"


def with_notes(text: str, notes: Sequence[str]) -> str:
    """`text` under its notes, one subtext line each (at most NOTES_MAX × NOTE_MAX_CHARS characters in all)."""
    if not notes:
        return text
    shown = [one_line(note) for note in notes[:NOTES_MAX]]
    if len(notes) > NOTES_MAX:
        shown.append(f"…and {len(notes) - NOTES_MAX} more like these.")
    return "\n".join([*(SUBTEXT + note for note in shown), text])
