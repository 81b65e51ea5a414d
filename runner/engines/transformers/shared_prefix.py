"""The start every prompt shares (the system prompt in the chat template), read by the model once.

A joining job's prompt is then read from where it differs: with the default system prompt, most of a short Discord
question's prompt is shared (docs/decisions/008-continuous-batching-engine.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import DynamicCache

from runner.engines.transformers.prompt import build_prompt_ids
from runner.engines.transformers.rolling_batch import cache_states

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

ReadPrompt = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, DynamicCache], object]
"""Runs the model on (input ids, attention mask, positions) into a cache."""

MIN_SHARED_TOKENS = 4
"""A shorter common start (no system prompt) is not worth a second forward per prefill."""


@dataclass(frozen=True)
class SharedPrefix:
    ids: list[int]
    states: list[tuple[torch.Tensor, torch.Tensor]]
    """Each layer's keys and values for `ids`, [1, heads, len(ids), dim]."""

    def covers(self, prompt: list[int]) -> bool:
        """Whether `prompt` starts with the shared ids (and has tokens of its own after them)."""
        return len(prompt) > len(self.ids) and prompt[: len(self.ids)] == self.ids

    def cache(self, rows: int) -> DynamicCache:
        """A cache holding the shared start for `rows` rows, ready for the rest of their prompts."""
        return DynamicCache(
            [(keys.expand(rows, -1, -1, -1), values.expand(rows, -1, -1, -1)) for keys, values in self.states]
        )


def read_shared_prefix(
    tokenizer: PreTrainedTokenizerBase, system_prompt: str, max_tokens: int, device: torch.device, read: ReadPrompt
) -> SharedPrefix | None:
    """The token ids every prompt starts with, and their cache; None when prompts share too little.

    Found as the common start of two prompts that differ only in their message. A prompt whose tokens happen
    not to start with it (a template that merges the message into the header) is simply read whole.
    """
    first = build_prompt_ids(tokenizer, system_prompt, (), "a", max_tokens)
    second = build_prompt_ids(tokenizer, system_prompt, (), "b", max_tokens)
    length = next((i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b), 0)
    if length < MIN_SHARED_TOKENS:
        return None
    ids = first[:length]
    input_ids = torch.tensor([ids], dtype=torch.long, device=device)
    mask = torch.ones_like(input_ids)
    cache = DynamicCache()
    read(input_ids, mask, torch.arange(length, device=device).unsqueeze(0), cache)
    return SharedPrefix(ids, cache_states(cache))
