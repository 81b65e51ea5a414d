"""The decoding step in plain tensor calls: bit for bit the logits and cache of the model's own forward, padded
batch or single row, packed or not, float32 (also with float16 weights) or bfloat16; models it does not cover
decode through their forward."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModelForCausalLM,
    DynamicCache,
    LlamaConfig,
    LlamaForCausalLM,
    PreTrainedModel,
    Qwen2Config,
    Qwen2ForCausalLM,
)

from runner.engines.choice import load_engine
from runner.engines.protocol import generate_all
from runner.engines.transformers.engine import TransformersEngine
from runner.engines.transformers.llama_decode import LlamaDecodeStep
from runner.engines.transformers.rolling_batch import cache_states
from runner.weights.fusing import merge_projections
from runner.weights.half_weights import Float16WeightLinear
from runner.weights.packing import pack_linear_layers
from tests.test_engine import mixed_requests, tiny_settings


def prepared_model(model_dir: Path, dtype: torch.dtype, *, linears: str, attention: str = "sdpa") -> PreTrainedModel:
    """`linears`: "onednn" (packed), "float16-weights" or "torch" (nn.Linear)."""
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation=attention).eval()
    merge_projections(model)
    if linears != "torch":
        packed = pack_linear_layers(model, rows_hint=3, float16_weights=linears == "float16-weights")
        assert packed or dtype == torch.bfloat16, "bfloat16 packs only on some CPUs"
    assert has_float16_weights(model) == (linears == "float16-weights")
    return model


def has_float16_weights(model: torch.nn.Module) -> bool:
    return any(isinstance(module, Float16WeightLinear) for module in model.modules())


def prefilled(model: PreTrainedModel, lengths: list[int]) -> tuple[DynamicCache, torch.Tensor, torch.Tensor]:
    """A left-padded batch whose prompts were read by the model's forward: (cache, mask, next token ids)."""
    torch.manual_seed(0)
    longest = max(lengths)
    ids = torch.randint(3, model.config.vocab_size, (len(lengths), longest))
    mask = torch.tensor([[0] * (longest - n) + [1] * n for n in lengths])
    cache = DynamicCache()
    with torch.inference_mode():
        logits = model(
            input_ids=ids, attention_mask=mask, position_ids=(mask.cumsum(1) - 1).clamp(min=0), past_key_values=cache
        ).logits
    return cache, mask, logits[:, -1:].argmax(-1)


@pytest.mark.parametrize(
    ("dtype", "linears"),
    [
        (torch.float32, "onednn"),
        (torch.float32, "float16-weights"),
        (torch.float32, "torch"),
        (torch.bfloat16, "onednn"),
        (torch.bfloat16, "torch"),
    ],
    ids=["float32-packed", "float16-weights", "float32-unpacked", "bfloat16-packed", "bfloat16-unpacked"],
)
@pytest.mark.parametrize("lengths", [[5, 9, 2], [7]], ids=["padded-batch", "one-row"])
def test_a_step_gives_the_models_logits_and_cache_bit_for_bit(
    tiny_model_dir: Path, dtype: torch.dtype, linears: str, lengths: list[int]
) -> None:
    assert_same_steps(prepared_model(tiny_model_dir, dtype, linears=linears), lengths)


@pytest.mark.parametrize("float16_weights", [False, True], ids=["packed", "float16-weights"])
def test_biases_and_llama3_rope_scaling_give_the_models_logits_too(float16_weights: bool) -> None:
    torch.manual_seed(1)
    config = LlamaConfig(
        vocab_size=96,
        hidden_size=64,
        intermediate_size=96,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=2,
        attention_bias=True,
        mlp_bias=True,
        max_position_embeddings=512,
        initializer_range=0.5,
        rope_parameters={
            "rope_type": "llama3",
            "rope_theta": 500000.0,
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 8,
        },
        attn_implementation="sdpa",
    )
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.normal_()  # biases start at zero
    merge_projections(model)
    assert pack_linear_layers(model, rows_hint=3, float16_weights=float16_weights)
    assert has_float16_weights(model) == float16_weights
    assert_same_steps(model, [6, 11, 3])


def assert_same_steps(model: PreTrainedModel, lengths: list[int]) -> None:
    """Three decoding steps of a prefilled batch through the model's forward and through the plain calls."""
    step = LlamaDecodeStep.build(model)
    assert step is not None
    cache, mask, next_ids = prefilled(model, lengths)
    theirs, ours = copy.deepcopy(cache), copy.deepcopy(cache)
    for _ in range(3):  # a few steps, so that the cache each one leaves is read by the next
        mask = torch.cat([mask, mask.new_ones(len(lengths), 1)], dim=1)
        positions = mask.sum(dim=1, keepdim=True) - 1
        with torch.inference_mode():
            expected = model(
                input_ids=next_ids, attention_mask=mask, position_ids=positions, past_key_values=theirs
            ).logits[:, -1]
            logits = step.logits(next_ids, mask, positions, ours)
        assert logits.dtype == expected.dtype
        assert torch.equal(logits, expected)
        for (their_keys, their_values), (our_keys, our_values) in zip(
            cache_states(theirs), cache_states(ours), strict=True
        ):
            assert torch.equal(our_keys, their_keys) and torch.equal(our_values, their_values)
        next_ids = logits.argmax(-1, keepdim=True)


def test_the_engine_decodes_with_it_and_answers_as_the_model_does(tiny_model_dir: Path) -> None:
    engine = load_engine(tiny_settings(tiny_model_dir))
    assert isinstance(engine, TransformersEngine)
    assert engine.decode_step is not None and "decode=plain-calls" in engine.description
    requests = mixed_requests()
    answers = generate_all(engine, requests)
    engine.decode_step = None  # the model's own forward for every step
    assert generate_all(engine, requests) == answers


def test_models_it_does_not_cover_decode_through_their_forward(tiny_model_dir: Path) -> None:
    unmerged = AutoModelForCausalLM.from_pretrained(tiny_model_dir, attn_implementation="sdpa")
    assert LlamaDecodeStep.build(unmerged) is None
    assert (
        LlamaDecodeStep.build(prepared_model(tiny_model_dir, torch.float32, linears="onednn", attention="eager"))
        is None
    )
    qwen = Qwen2ForCausalLM(
        Qwen2Config(
            vocab_size=64,
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=2,
            num_key_value_heads=1,
            attn_implementation="sdpa",
        )
    )
    merge_projections(qwen)
    assert LlamaDecodeStep.build(qwen) is None, "attention with biases and sliding windows: not this step's"
