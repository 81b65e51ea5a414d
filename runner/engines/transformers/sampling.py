"""Each job's own next-token choice in a shared batch: its penalty, temperature, top-p and stop condition.

Chosen for the whole batch at once, with the arithmetic (and order) of transformers' processors, so that a job's
answer is the one `generate` gives alone; row by row costs more (docs/decisions/012-batched-token-choice.md).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from runner.engines.protocol import GenerationRequest

NUCLEUS_CANDIDATES = 1024
"""Tokens a sampled row's top-p is first looked for among; a wider nucleus falls back to sorting its row."""


class RowSampler:
    """One job's sampling settings and stop condition, checked when the job joins a batch (so that settings
    transformers would refuse fail that job alone, at once)."""

    def __init__(self, request: GenerationRequest, eos_token_ids: list[int]) -> None:
        if request.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {request.max_new_tokens}")
        if request.min_new_tokens > request.max_new_tokens:
            raise ValueError(f"min_new_tokens={request.min_new_tokens} is more than max_new_tokens")
        if not request.repetition_penalty > 0 or math.isinf(request.repetition_penalty):
            raise ValueError(f"repetition_penalty must be a positive number, got {request.repetition_penalty}")
        self.greedy = request.temperature <= 0
        if not self.greedy and math.isinf(request.temperature):
            raise ValueError(f"temperature has to be a finite positive float, got {request.temperature}")
        if not 0 <= request.top_p <= 1:
            raise ValueError(f"top_p has to be a float between 0 and 1, got {request.top_p}")
        self.max_new_tokens = request.max_new_tokens
        self.min_new_tokens = request.min_new_tokens
        self.repetition_penalty = request.repetition_penalty
        self.temperature = request.temperature
        self.top_p = request.top_p
        self.eos_token_ids = eos_token_ids
        self._prompt_tokens: torch.Tensor | None = None

    def seen_tokens(self, prompt: list[int], generated: list[int], device: torch.device) -> torch.Tensor:
        """The distinct tokens of the prompt (worked out once per job) and those generated, for the penalty."""
        if self._prompt_tokens is None or self._prompt_tokens.device != device:
            self._prompt_tokens = torch.tensor(sorted(set(prompt)), dtype=torch.long, device=device)
        if not generated:
            return self._prompt_tokens
        return torch.cat([self._prompt_tokens, torch.tensor(generated, dtype=torch.long, device=device)])

    def finished(self, token: int, generated: int) -> bool:
        """Whether the row stops after `token`, its `generated`-th (end-of-sequence is never chosen too early)."""
        return generated >= self.max_new_tokens or token in self.eos_token_ids


def choose_tokens(
    samplers: Sequence[RowSampler], logits: torch.Tensor, prompts: Sequence[list[int]], generated: Sequence[list[int]]
) -> list[int]:
    """Each row's next token, from the batch's float32 logits [rows, vocab] and each row's tokens so far."""
    scores = processed_scores(samplers, logits, prompts, generated)
    tokens = scores.argmax(dim=-1)
    sampled = [i for i, sampler in enumerate(samplers) if not sampler.greedy]
    if sampled:
        index = torch.tensor(sampled, device=scores.device)
        tokens[index] = _sample(scores[index])
    return [int(token) for token in tokens.tolist()]


def _sample(scores: torch.Tensor) -> torch.Tensor:
    """One token per row, drawn with probability softmax(scores); rows [n, vocab], -inf for tokens left out.

    Drawn among each row's candidates only when top-p left at most NUCLEUS_CANDIDATES of them: the same
    distribution, without a multinomial over the whole vocabulary (docs/decisions/012-batched-token-choice.md).
    """
    candidates = int(torch.isfinite(scores).sum(dim=-1).max())
    if candidates > NUCLEUS_CANDIDATES:
        return torch.multinomial(scores.softmax(dim=-1), num_samples=1).squeeze(1)
    values, index = torch.topk(scores, candidates)
    picked = torch.multinomial(values.softmax(dim=-1), num_samples=1)
    return index.gather(1, picked).squeeze(1)


def processed_scores(
    samplers: Sequence[RowSampler], logits: torch.Tensor, prompts: Sequence[list[int]], generated: Sequence[list[int]]
) -> torch.Tensor:
    """The logits after each row's processors: what its token is picked from (argmax, or sampled by softmax)."""
    scores = logits.clone()
    device = scores.device
    held = [i for i, sampler in enumerate(samplers) if len(generated[i]) < sampler.min_new_tokens]
    if held:
        eos = torch.tensor(samplers[held[0]].eos_token_ids, device=device)
        scores[torch.tensor(held, device=device).unsqueeze(1), eos] = -math.inf
    penalised = [i for i, sampler in enumerate(samplers) if sampler.repetition_penalty != 1.0]
    if penalised:
        seen = [samplers[i].seen_tokens(prompts[i], generated[i], device) for i in penalised]
        _penalise_repetition(scores, penalised, seen, samplers)
    sampled = [i for i, sampler in enumerate(samplers) if not sampler.greedy]
    if sampled:
        index = torch.tensor(sampled, device=device)
        temperature = torch.tensor([[samplers[i].temperature] for i in sampled], device=device)
        top_p = torch.tensor([[samplers[i].top_p] for i in sampled], device=device)
        scores[index] = _top_p(scores[index] / temperature, top_p)
    return scores


def _penalise_repetition(
    scores: torch.Tensor, rows: list[int], seen: list[torch.Tensor], samplers: Sequence[RowSampler]
) -> None:
    """Divides each seen token's positive score by the row's penalty, multiplies its negative one (in place).

    The prompt's distinct tokens are worked out once per job (RowSampler.seen_tokens) rather than rebuilding
    each row's whole prompt as a tensor at every step, which grows with long prompts.
    """
    device = scores.device
    ids = torch.nn.utils.rnn.pad_sequence(seen, batch_first=True, padding_value=-1)
    # Short rows repeat their own first token: gathering and scattering a token twice changes nothing.
    ids = torch.where(ids < 0, ids[:, :1], ids)
    index = torch.tensor(rows, device=device)
    penalty = torch.tensor([[samplers[i].repetition_penalty] for i in rows], device=device)
    picked = scores[index]
    seen_scores = picked.gather(1, ids)
    seen_scores = torch.where(seen_scores < 0, seen_scores * penalty, seen_scores / penalty)
    scores[index] = picked.scatter(1, ids, seen_scores)


def _top_p(scores: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """Keeps each row's smallest set of tokens whose probabilities add up to more than its top_p (at least one).

    A token stays if the tokens above it add up to less than top_p, which is TopPLogitsWarper's rule read from
    the top. The NUCLEUS_CANDIDATES best tokens (a topk, far cheaper than sorting the vocabulary:
    docs/decisions/012-batched-token-choice.md) hold the whole nucleus whenever they add up to top_p, and only
    other rows are sorted.
    """
    values, index = torch.topk(scores, min(NUCLEUS_CANDIDATES, scores.shape[-1]))
    probs = (values - torch.logsumexp(scores, dim=-1, keepdim=True)).exp()
    cumulative = probs.cumsum(dim=-1)
    keep = (cumulative - probs) < top_p
    keep[:, 0] = True
    kept = scores.masked_fill(~torch.zeros_like(scores, dtype=torch.bool).scatter(1, index, keep), -math.inf)
    beyond = (cumulative[:, -1:] < top_p).squeeze(1).nonzero().squeeze(1)
    if len(beyond):
        kept[beyond] = _top_p_sorted(scores[beyond], top_p[beyond])
    return kept


def _top_p_sorted(scores: torch.Tensor, top_p: torch.Tensor) -> torch.Tensor:
    """_top_p for rows whose nucleus is wider than NUCLEUS_CANDIDATES: TopPLogitsWarper's own way."""
    sorted_scores, sorted_index = torch.sort(scores, descending=False)
    cumulative = sorted_scores.softmax(dim=-1).cumsum(dim=-1)
    remove = cumulative <= (1 - top_p)
    remove[:, -1] = False
    return scores.masked_fill(remove.scatter(1, sorted_index, remove), -math.inf)
