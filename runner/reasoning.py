"""A reasoning model's thinking told apart from its answer, as the text streams in: what is between `<think>` and
`</think>` is reasoning, never part of the answer.

The rules (docs/decisions/017-reasoning-tags.md):
- A think block counts only at the start of the answer: its first non-blank characters are `<think>` (several
  blocks in a row count too). A `<think>` anywhere later is just text, so answers that write about the tag are
  shown as written, and an unterminated block is reasoning to the end (a model that ran out of tokens thinking).
- An engine that knows the answer begins inside a block (the chat template put `<think>` at the end of the prompt)
  starts the text with `<think>` itself, so the text before the model's `</think>` is never shown.
- Otherwise a bare `</think>` (no `<think>` before it) still ends reasoning that began in the prompt, but only if
  it is the first tag in the answer and starts a line outside a code block: a tag mentioned in prose or in code
  (`` `</think>` ``, a fenced example) makes the answer an ordinary one, of which nothing is hidden. Until that
  tag arrives nothing tells the thinking apart, so it shows while it streams (the OpenAI engine learns from the
  first such answer that its model does this: runner/engines/openai/thinking.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, auto

OPEN_TAG = "<think>"
CLOSE_TAG = "</think>"
_FENCE = "```"


@dataclass(frozen=True)
class Split:
    visible: str
    """The answer so far, without reasoning and the whitespace before it (text that may be the start of a tag is
    held back until it is known)."""
    reasoning: str
    """The reasoning so far."""
    thinking: bool
    """Inside a think block: the model is thinking (at the end of the text: it ran out while thinking)."""
    implied: bool
    """A bare `</think>` ended reasoning that no `<think>` opened (the prompt did)."""


class _Phase(Enum):
    LEAD = auto()
    """Before the answer: nothing but whitespace and think blocks so far."""
    THINKING = auto()
    TENTATIVE = auto()
    """Answer text with no think block before it: a bare `</think>` may yet make it reasoning."""
    ANSWER = auto()
    """The answer: no tag is read any more."""


class ReasoningSplitter:
    """Fed a text in chunks (split anywhere, inside tags too), tells its answer from its reasoning so far."""

    def __init__(self) -> None:
        self._phase = _Phase.LEAD
        self._pending = ""
        """Text not yet decided: a possible start of a tag, or the whitespace before the answer."""
        self._visible = ""
        self._reasoning = ""
        self._closed = False
        """A think block has ended: a bare `</think>` can no longer end an implied one."""
        self._block_start = False
        """Nothing of the current block read yet (a `<think>` repeated there is dropped)."""
        self._implied = False

    def feed(self, chunk: str) -> Split:
        """Reads the next piece of the text; returns the split so far."""
        self._pending += chunk
        while self._pending and self._advance():
            pass
        return self._split(self._visible)

    def finish(self) -> Split:
        """The split of the whole text: whatever was held back is decided (a block still open stays reasoning)."""
        if self._phase is _Phase.THINKING:
            self._reasoning += self._pending
            return self._split(self._visible)
        if self._phase is _Phase.LEAD:
            return self._split(self._pending.lstrip())
        return self._split(self._visible + self._pending)

    def _split(self, visible: str) -> Split:
        return Split(visible, self._reasoning, self._phase is _Phase.THINKING, self._implied)

    def _advance(self) -> bool:
        """Reads what it can of `_pending`; False when the rest must wait for more text."""
        if self._phase is _Phase.LEAD:
            return self._lead()
        if self._phase is _Phase.THINKING:
            return self._think()
        if self._phase is _Phase.TENTATIVE:
            return self._tentative()
        self._visible += self._pending
        self._pending = ""
        return True

    def _lead(self) -> bool:
        rest = self._pending.lstrip()
        self._pending = rest
        tags = (OPEN_TAG,) if self._closed else (OPEN_TAG, CLOSE_TAG)
        if not rest or any(tag.startswith(rest) and tag != rest for tag in tags):
            return False
        if rest.startswith(OPEN_TAG):
            self._pending = rest[len(OPEN_TAG) :]
            self._phase, self._block_start = _Phase.THINKING, True
        elif not self._closed and rest.startswith(CLOSE_TAG):  # an empty implied block: the answer follows it
            self._pending = rest[len(CLOSE_TAG) :]
            self._closed = self._implied = True
        else:
            self._phase = _Phase.ANSWER if self._closed else _Phase.TENTATIVE
        return True

    def _think(self) -> bool:
        if self._block_start:
            rest = self._pending.lstrip()
            if OPEN_TAG.startswith(rest) and rest != OPEN_TAG:
                return False
            self._block_start = False
            if rest.startswith(OPEN_TAG):  # the model repeats the tag its prompt ended with
                self._pending = rest[len(OPEN_TAG) :]
        end = self._pending.find(CLOSE_TAG)
        if end >= 0:
            self._reasoning += self._pending[:end]
            self._pending = self._pending[end + len(CLOSE_TAG) :]
            self._phase, self._closed = _Phase.LEAD, True
            return True
        self._reasoning += self._take_all_but_a_tag_start((CLOSE_TAG,))
        return False

    def _tentative(self) -> bool:
        text = self._pending
        opened, closed = text.find(OPEN_TAG), text.find(CLOSE_TAG)
        if opened >= 0 and (closed < 0 or opened < closed):
            self._phase = _Phase.ANSWER  # it writes about the tags: an ordinary answer
            return True
        if closed < 0:
            self._visible += self._take_all_but_a_tag_start((OPEN_TAG, CLOSE_TAG))
            return False
        before = self._visible + text[:closed]
        if not _starts_a_line(before) or _in_code_block(before):
            self._phase = _Phase.ANSWER
            return True
        self._reasoning += before
        self._visible = ""
        self._pending = text[closed + len(CLOSE_TAG) :]
        self._phase, self._closed, self._implied = _Phase.LEAD, True, True
        return True

    def _take_all_but_a_tag_start(self, tags: tuple[str, ...]) -> str:
        """Takes `_pending` except its end where that may be the start of one of `tags` (kept for the next chunk)."""
        text = self._pending
        keep = max((n for tag in tags for n in range(1, len(tag)) if text.endswith(tag[:n])), default=0)
        self._pending = text[len(text) - keep :]
        return text[: len(text) - keep]


def _starts_a_line(before: str) -> bool:
    """Whether a tag after `before` is alone at the start of its line (blanks aside)."""
    return not before[before.rfind("\n") + 1 :].strip()


def _in_code_block(before: str) -> bool:
    """Whether `before` leaves a fenced code block open."""
    return sum(line.lstrip().startswith(_FENCE) for line in before.splitlines()) % 2 == 1


def split_reasoning(text: str, *, finished: bool = True) -> Split:
    """The split of a whole text (`finished`), or of the text so far of an answer still being written."""
    splitter = ReasoningSplitter()
    split = splitter.feed(text)
    return splitter.finish() if finished else split


def prompt_opens_thinking(prompt_end: str) -> bool:
    """Whether a prompt ending with `prompt_end` leaves a think block open for the model to write in (the templates
    of DeepSeek-R1 and of Qwen3's thinking models end the assistant's cue with `<think>`)."""
    return prompt_end.rstrip().endswith(OPEN_TAG)
