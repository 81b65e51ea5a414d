"""float32 arithmetic with float16 weights (DTYPE=float16-weights, what DTYPE=auto picks on a CPU without native
bfloat16): each weight rounded to float16 once at load, products and sums in float32; float32 packing where a
weight does not fit float16."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import PreTrainedModel

from runner.engines.choice import load_engine
from runner.engines.protocol import generate_all
from runner.engines.transformers.engine import TransformersEngine
from runner.weights.half_weights import Float16WeightLinear
from runner.weights.packing import PackedLinear, pack_linear_layers
from tests.test_engine import MESSAGES, request, tiny_settings
from tests.test_packed_weights import linear_names, plain_answer, plain_model


def rounded_model(model_dir: Path) -> PreTrainedModel:
    """The plain model with each linear layer's weight rounded to float16 (the embeddings, even if tied, not)."""
    model = plain_model(model_dir)
    model.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())
    with torch.no_grad():
        for module in model.modules():
            if type(module) is nn.Linear:
                module.weight.copy_(module.weight.half().float())
    return model


def test_every_linear_layer_holds_float16_weights_and_computes_in_float32(tiny_model_dir: Path) -> None:
    plain, rounded, half = plain_model(tiny_model_dir), rounded_model(tiny_model_dir), plain_model(tiny_model_dir)
    assert pack_linear_layers(half, rows_hint=16, float16_weights=True)
    assert linear_names(half, Float16WeightLinear) == linear_names(plain, nn.Linear)
    assert linear_names(half, nn.Linear) == []
    ids = torch.randint(0, plain.config.vocab_size, (3, 9))
    with torch.inference_mode():
        logits = half(input_ids=ids).logits
        torch.testing.assert_close(logits, rounded(input_ids=ids).logits, rtol=1e-5, atol=1e-5)
        # The rounding is there: float32 weights give other logits than this tolerance allows.
        assert not torch.allclose(logits, plain(input_ids=ids).logits, rtol=1e-5, atol=1e-5)


def test_a_bias_is_added_in_float32() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(16, 8)
    with torch.no_grad():
        linear.bias.fill_(1000.0625)  # float16 would make it 1000.0
    x = torch.randn(4, 16)
    with torch.inference_mode():
        expected = x @ linear.weight.half().float().T + linear.bias
        torch.testing.assert_close(Float16WeightLinear(linear)(x), expected, rtol=0, atol=1e-4)


def test_a_weight_float16_cannot_hold_leaves_the_layers_packed_in_float32(caplog: pytest.LogCaptureFixture) -> None:
    model = nn.Sequential(nn.Linear(8, 8), nn.Linear(8, 8))
    with torch.no_grad():
        model[1].weight[0, 0] = 1e6  # float16 stops at 65504
    with caplog.at_level(logging.WARNING):
        assert pack_linear_layers(model, rows_hint=4, float16_weights=True)
    assert {type(layer) for layer in model} == {PackedLinear}
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "float16 weights are not possible here" in record.getMessage() and "1e+06" in record.getMessage()


def test_the_runner_loads_float16_weights_and_answers_as_the_rounded_model_does(tiny_model_dir: Path) -> None:
    engine = load_engine(tiny_settings(tiny_model_dir, dtype="float16-weights"))
    assert isinstance(engine, TransformersEngine)
    for part in (" dtype=float32 ", " linear=float16-weights ", " decode=plain-calls ", "[DTYPE=float16-weights]"):
        assert part in engine.description
    requests = [request(f"job-{i}", message) for i, message in enumerate(MESSAGES)]
    rounded = rounded_model(tiny_model_dir)
    for result, req in zip(generate_all(engine, requests), requests, strict=True):
        assert result.text == plain_answer(engine, rounded, req)
