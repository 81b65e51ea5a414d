"""A batch's token choices: each row processed as transformers' own processors would, whatever its neighbours."""

from __future__ import annotations

import math
from collections import Counter

import pytest
import torch
from transformers import (
    LogitsProcessorList,
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopPLogitsWarper,
)

from runner.engines.protocol import GenerationRequest
from runner.engines.transformers import sampling
from runner.engines.transformers.sampling import RowSampler, choose_tokens, processed_scores

VOCAB = 50
EOS = [7, 9]


def sampler(**settings: float) -> RowSampler:
    values = {"max_new_tokens": 8, "temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0, **settings}
    return RowSampler(GenerationRequest("job", (), "Hi", **values), EOS)  # type: ignore[arg-type]


def transformers_scores(row: RowSampler, logits: torch.Tensor, ids: list[int]) -> torch.Tensor:
    """What `model.generate` picks this row's token from, with the same settings."""
    processors = LogitsProcessorList()
    if row.repetition_penalty != 1.0:
        processors.append(RepetitionPenaltyLogitsProcessor(row.repetition_penalty))
    if not row.greedy:
        processors.append(TemperatureLogitsWarper(row.temperature))
        if row.top_p < 1.0:
            processors.append(TopPLogitsWarper(row.top_p))
    return processors(torch.tensor([ids]), logits.unsqueeze(0).clone())[0]  # type: ignore[arg-type]


def test_every_row_is_processed_as_transformers_processes_it_alone() -> None:
    torch.manual_seed(0)
    rows = [
        sampler(),
        sampler(repetition_penalty=1.3),
        sampler(temperature=0.7, top_p=0.9, repetition_penalty=1.1),
        sampler(temperature=1.5),
        sampler(temperature=0.5, top_p=0.3),
        sampler(repetition_penalty=0.8),
    ]
    logits = torch.randn(len(rows), VOCAB) * 3
    prompts = [torch.randint(0, VOCAB, (n,)).tolist() for n in (3, 11, 6, 1, 20, 4)]
    generated: list[list[int]] = [[1, 2], [], [5, 5, 5], [], [40], [2]]
    scores = processed_scores(rows, logits, prompts, generated)
    for i, row in enumerate(rows):
        torch.testing.assert_close(scores[i], transformers_scores(row, logits[i], prompts[i] + generated[i]))
    assert not torch.isinf(scores[1]).any()
    assert torch.isinf(scores[4]).sum() > VOCAB // 2, "top_p=0.3 should cut most of the vocabulary"


def test_greedy_rows_pick_their_best_token_and_sampled_ones_stay_within_top_p() -> None:
    torch.manual_seed(1)
    rows = [sampler(), sampler(temperature=1.0, top_p=0.5), sampler(repetition_penalty=2.0)]
    logits = torch.randn(len(rows), VOCAB) * 4
    prompts = [[0], [0], [int(logits[2].argmax())]]
    processed = processed_scores(rows, logits, prompts, [[], [], []])
    allowed = ~torch.isinf(processed[1])
    assert processed[2, prompts[2][0]] != logits[2, prompts[2][0]]
    for _ in range(50):
        greedy, picked, penalised = choose_tokens(rows, logits, prompts, [[], [], []])
        assert greedy == int(logits[0].argmax())
        assert allowed[picked]
        assert penalised == int(processed[2].argmax())


def test_end_of_sequence_waits_for_min_new_tokens_of_that_row_only() -> None:
    logits = torch.zeros(2, VOCAB)
    logits[:, EOS[0]] = 10.0
    rows = [sampler(min_new_tokens=3), sampler(min_new_tokens=3)]
    tokens = choose_tokens(rows, logits, [[1], [1]], [[4, 4], [4, 4, 4]])
    assert tokens[0] not in EOS
    assert tokens[1] == EOS[0]


def test_the_logits_given_are_left_as_they_were() -> None:
    logits = torch.randn(2, VOCAB)
    before = logits.clone()
    choose_tokens([sampler(repetition_penalty=1.5), sampler(temperature=0.9, top_p=0.5)], logits, [[3], [4]], [[], []])
    assert torch.equal(logits, before)


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"repetition_penalty": math.inf}, "repetition_penalty"),
        ({"temperature": math.inf}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"max_new_tokens": 0}, "max_new_tokens"),
        ({"min_new_tokens": 9}, "min_new_tokens"),
    ],
)
def test_settings_transformers_would_refuse_are_refused_when_the_job_joins(
    settings: dict[str, float], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        sampler(**settings)


@pytest.mark.parametrize("candidates", [3, 8, 1024])
def test_top_p_among_the_best_candidates_or_over_the_whole_row_matches_transformers(
    candidates: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Peaked rows keep their nucleus among the best `candidates` tokens; flat ones need the whole row sorted."""
    monkeypatch.setattr(sampling, "NUCLEUS_CANDIDATES", candidates)
    torch.manual_seed(2)
    rows = [sampler(temperature=1.0, top_p=p) for p in (0.5, 0.9, 0.95, 0.99)]
    peaked = torch.randn(2, VOCAB) + torch.nn.functional.one_hot(torch.tensor([3, 4]), VOCAB) * 12
    flat = torch.randn(2, VOCAB) * 0.1
    logits = torch.cat([peaked, flat])
    scores = processed_scores(rows, logits, [[0]] * 4, [[]] * 4)
    for i, row in enumerate(rows):
        torch.testing.assert_close(scores[i], transformers_scores(row, logits[i], [0]))
    assert torch.isfinite(scores[2:]).sum(dim=-1).min() > 8, "the flat rows should keep more than 8 tokens"


@pytest.mark.parametrize("candidates", [2, 1024])
def test_sampled_tokens_follow_the_kept_probabilities(candidates: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sampling, "NUCLEUS_CANDIDATES", candidates)
    torch.manual_seed(3)
    row = sampler(temperature=1.0)
    logits = torch.full((1, VOCAB), -math.inf)
    logits[0, [5, 6, 7]] = torch.tensor([0.5, 0.3, 0.2]).log()
    draws = Counter(choose_tokens([row], logits, [[1]], [[]])[0] for _ in range(3000))
    assert set(draws) == {5, 6, 7}
    for token, expected in ((5, 0.5), (6, 0.3), (7, 0.2)):
        assert abs(draws[token] / 3000 - expected) < 0.03, draws


def test_a_rows_penalty_follows_its_growing_answer_step_after_step() -> None:
    torch.manual_seed(4)
    row = sampler(repetition_penalty=1.4)
    prompt = torch.randint(0, VOCAB, (30,)).tolist()
    generated: list[int] = []
    for _ in range(6):
        logits = torch.randn(1, VOCAB) * 2
        scores = processed_scores([row], logits, [prompt], [generated])
        torch.testing.assert_close(scores[0], transformers_scores(row, logits[0], prompt + generated))
        generated.append(int(scores[0].argmax()))
