"""What a job's messages should show: the coalescing rule (newest text wins, the final text beats any partial), the
parts a text splits into, and the requests that bring the messages there from what they show now."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from shared.config.defaults import DISCORD_MESSAGE_LIMIT_CHARS
from shared.queues.notes import with_notes
from shared.queues.responses import PostingState
from shared.queues.schemas import Response
from updater.splitting import open_fence_language, split_message

STREAMING_MARKER = " ▌"
"""Ends the last part while the answer is still being written; the final edit removes it."""

_CLOSE_FENCE = "\n```"
PART_LIMIT_CHARS = DISCORD_MESSAGE_LIMIT_CHARS - len(STREAMING_MARKER) - len(_CLOSE_FENCE)
"""Parts are cut alike while streaming and at the end (so a complete part is never edited again), leaving room for
the marker and for closing a code block the newest words left open."""


@dataclass(frozen=True)
class Shown:
    text: str
    final: bool


def what_to_show(response: Response, state: PostingState) -> Shown | None:
    """The text the job's messages should show now, or None when there is nothing newer to show.

    A final text (answer, apology) always wins; a partial shows the newest partial text read with the lock, never
    once the final text is on Discord, and nothing once the job completed (its partial text is then gone).
    """
    if response["kind"] in ("answer", "apology"):
        return final_text(response)
    if response["kind"] == "partial" and not state.final and state.partial.strip():
        return Shown(state.partial, final=False)
    return None


def final_text(response: Response) -> Shown:
    """An answer's final text, under its notes (`-# ` lines, as the runner put them above its partial texts)."""
    return Shown(with_notes(response["content"], response.get("notes", [])), final=True)


def parts_of(shown: Shown) -> list[str]:
    parts = split_message(shown.text, PART_LIMIT_CHARS)
    if shown.final or not parts:
        return parts
    last = parts[-1]
    if open_fence_language(last) is not None:
        last += _CLOSE_FENCE
    return [*parts[:-1], last + STREAMING_MARKER]


def digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()


@dataclass(frozen=True)
class Action:
    kind: Literal["create", "edit", "delete"]
    index: int
    text: str = ""
    message_id: str = ""


def plan(shown: Shown, state: PostingState) -> list[Action]:
    """The requests, in order, from what the job's parts show now to `shown`: parts not on Discord are created,
    parts showing something else are edited (a complete part's text no longer changes, so it is left alone), and,
    for the final text, parts beyond it (a retried job's answer may be shorter than the first try's) deleted."""
    actions: list[Action] = []
    parts = parts_of(shown)
    for index, text in enumerate(parts):
        if index not in state.posted:
            actions.append(Action("create", index, text))
        elif state.digests.get(index) != digest(text):
            actions.append(Action("edit", index, text, state.posted[index]))
    if shown.final:
        extra = sorted(i for i in state.posted if i >= len(parts))
        actions.extend(Action("delete", i, message_id=state.posted[i]) for i in extra)
    return actions
