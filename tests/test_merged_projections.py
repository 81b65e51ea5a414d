"""q/k/v and gate/up merged into one linear layer each: the same logits and the same greedy answers as the model
as it was, packed or not, one row or a batch."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from runner.weights.fusing import MergedProjections, ProjectionSlice, merge_projections
from runner.weights.packing import PackedLinear, pack_linear_layers


def plain_model(model_dir: Path) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="sdpa").eval()


def test_each_layers_projections_are_merged_into_one_linear_each(tiny_model_dir: Path) -> None:
    model = plain_model(tiny_model_dir)
    layers = model.config.num_hidden_layers
    assert merge_projections(model) == 2 * layers
    assert sum(type(m) is MergedProjections for m in model.modules()) == 2 * layers
    assert sum(type(m) is ProjectionSlice for m in model.modules()) == 5 * layers
    assert sum(type(m) is nn.Linear for m in model.modules()) == 2 * layers * 2 + 1, "merged, o_proj, down, head"
    assert merge_projections(model) == 0, "merging twice changes nothing"


def test_merged_projections_give_the_same_logits_and_answers_packed_or_not(tiny_model_dir: Path) -> None:
    plain, merged, merged_packed = (plain_model(tiny_model_dir) for _ in range(3))
    merge_projections(merged)
    merge_projections(merged_packed)
    assert pack_linear_layers(merged_packed, rows_hint=4)
    assert not any(type(m) is nn.Linear for m in merged_packed.modules())
    assert any(type(m) is PackedLinear for m in merged_packed.modules())
    torch.manual_seed(0)
    ids = torch.randint(0, plain.config.vocab_size, (3, 9))
    with torch.inference_mode():
        expected = plain(input_ids=ids).logits
        for model in (merged, merged_packed):
            torch.testing.assert_close(model(input_ids=ids).logits, expected, rtol=1e-4, atol=1e-4)
        greedy = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": 0}
        answer = plain.generate(ids, **greedy)  # type: ignore[operator]
        for model in (merged, merged_packed):
            assert torch.equal(model.generate(ids, **greedy), answer)  # type: ignore[operator]
