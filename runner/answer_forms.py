"""What a job's answer looks like on Discord and in history, from the text its engine wrote: the model's reasoning
is never part of either, unless SHOW_REASONING shows it on Discord as subtext (`-# ` lines) above the answer."""

from __future__ import annotations

from dataclasses import dataclass

from runner.reasoning import Split, split_reasoning

THINKING_STATUS = "-# thinking…"
"""Shown, as Discord subtext, while the model thinks and nothing of its answer is written yet."""
RAN_OUT_TEXT = "I ran out of room while thinking; ask me to be brief."
"""The answer of a model that thought until its token limit and wrote no answer."""
EMPTY_ANSWER_TEXT = "I don't have an answer to that."
"""Posted when the model's answer is empty, since Discord refuses empty messages."""
SUBTEXT = "-# "


@dataclass(frozen=True)
class FinalAnswer:
    shown: str
    """What the answer's messages show."""
    stored: str
    """What the conversation's history keeps: the answer alone, never the reasoning."""


def partial_form(text: str, show_reasoning: bool) -> str:
    """An answer still being written, as its message shows it ("" while there is nothing to show)."""
    split = split_reasoning(text, finished=False)
    body = split.visible.strip() or (THINKING_STATUS if _thought(split) else "")
    return _with_reasoning(split, body) if show_reasoning and body else body


def final_form(text: str, show_reasoning: bool) -> FinalAnswer:
    split = split_reasoning(text)
    answer = split.visible.strip() or (RAN_OUT_TEXT if _thought(split) else EMPTY_ANSWER_TEXT)
    return FinalAnswer(_with_reasoning(split, answer) if show_reasoning else answer, answer)


def _thought(split: Split) -> bool:
    return split.thinking or bool(split.reasoning.strip())


def _with_reasoning(split: Split, body: str) -> str:
    """Each line of the reasoning as a subtext line (small and grey on Discord, so the answer below stands out)."""
    lines = [f"{SUBTEXT}{line.strip()}" for line in split.reasoning.splitlines() if line.strip()]
    return "\n".join([*lines, body])
