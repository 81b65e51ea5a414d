"""Which waiting jobs join the running batch: in order, while it stays within BATCH_SIZE jobs and the token budget."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from runner.engines.protocol import GenerationRequest
from runner.engines.transformers.sampling import RowSampler


@dataclass(eq=False)
class Row:
    """A job in the engine: its prompt, sampler and the tokens it has produced."""

    request: GenerationRequest
    prompt: list[int]
    sampler: RowSampler
    generated: list[int] = field(default_factory=list)
    solo: bool = False
    """Set once a batch it was in failed: it starts again alone, so that a failure is its own."""
    opens_thinking: bool = False
    """Its prompt ends inside a think block (the chat template opened it): its text starts with `<think>`."""

    @property
    def span(self) -> int:
        """The most cache positions it can take: its prompt and every token it may generate."""
        return len(self.prompt) + self.request.max_new_tokens


def admit(waiting: deque[Row], running: list[Row], max_rows: int, token_budget: int) -> list[Row]:
    """Takes the waiting rows that may join `running` now, oldest first.

    Rows are left-padded to the longest, so the cache holds rows x longest span at most: that stays within
    `token_budget`. A row that does not fit waits, and so do those behind it, so a long prompt is never
    passed over for good. A solo row joins only an empty batch, and nothing joins it.
    """
    joining: list[Row] = []
    if any(row.solo for row in running):
        return joining
    longest = max((row.span for row in running), default=0)
    while waiting:
        row = waiting[0]
        rows = len(running) + len(joining) + 1
        longest = max(longest, row.span)
        if rows > 1 and (row.solo or rows > max_rows or rows * longest > token_budget):
            break
        joining.append(waiting.popleft())
        if row.solo:
            break
    return joining
