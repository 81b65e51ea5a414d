"""Each job's own next-token choice in a shared batch: its penalty, temperature, top-p and stop condition."""

from __future__ import annotations

from typing import cast

import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from runner.engine import GenerationRequest


class RowSampler:
    """Picks one job's tokens the way `model.generate` would with the same settings, one row of logits at a time.

    Built when the job joins a batch, so that settings transformers refuses fail that job alone, at once.
    """

    def __init__(self, request: GenerationRequest, eos_token_ids: list[int]) -> None:
        if request.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {request.max_new_tokens}")
        if request.min_new_tokens > request.max_new_tokens:
            raise ValueError(f"min_new_tokens={request.min_new_tokens} is more than max_new_tokens")
        self.max_new_tokens = request.max_new_tokens
        self.min_new_tokens = request.min_new_tokens
        self.eos_token_ids = eos_token_ids
        self.greedy = request.temperature <= 0
        # The order generate() applies them in: penalties first, then the warpers that shape the distribution.
        self.processors = LogitsProcessorList()
        if request.repetition_penalty != 1.0:
            self.processors.append(RepetitionPenaltyLogitsProcessor(request.repetition_penalty))
        if not self.greedy:
            self.processors.append(TemperatureLogitsWarper(request.temperature))
            if request.top_p < 1.0:
                self.processors.append(TopPLogitsWarper(request.top_p))

    def choose(self, logits: torch.Tensor, prompt: list[int], generated: list[int]) -> int:
        """The next token, given this row's float32 logits [vocab] and its tokens so far.

        Padding is no token of the row: unlike generate() on a padded batch, the penalty never sees it, so a
        job's answer does not depend on the batch it was in.
        """
        scores = logits.unsqueeze(0)
        if len(generated) < self.min_new_tokens:
            scores = scores.clone()
            scores[:, self.eos_token_ids] = -float("inf")
        if self.processors:
            ids = cast(torch.LongTensor, torch.tensor([prompt + generated], dtype=torch.long, device=scores.device))
            scores = self.processors(ids, scores)
        if self.greedy:
            return int(scores.argmax(dim=-1))
        return int(torch.multinomial(scores.softmax(dim=-1), num_samples=1))

    def finished(self, token: int, generated: int) -> bool:
        """Whether the row stops after `token`, its `generated`-th (end-of-sequence is never chosen too early)."""
        return generated >= self.max_new_tokens or token in self.eos_token_ids
