"""CPU linear layers packed for oneDNN: same results as torch's own, whatever the batch, and only where it can."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn
from transformers import AutoModelForCausalLM, PreTrainedModel

from runner.engines.choice import load_engine
from runner.engines.protocol import GenerationRequest, generate_all
from runner.engines.transformers.engine import TransformersEngine
from runner.weights.packing import PackedLinear, pack_linear_layers
from tests.test_engine import MESSAGES, request, tiny_settings


def plain_model(model_dir: Path, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    return AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, attn_implementation="sdpa").eval()


def linear_names(model: nn.Module, kind: type[nn.Module]) -> list[str]:
    return [name for name, module in model.named_modules() if type(module) is kind]


def test_every_linear_layer_is_packed_and_gives_torchs_logits(tiny_model_dir: Path) -> None:
    plain, packed = plain_model(tiny_model_dir), plain_model(tiny_model_dir)
    names = linear_names(plain, nn.Linear)
    assert pack_linear_layers(packed, rows_hint=16)
    assert linear_names(packed, PackedLinear) == names
    assert linear_names(packed, nn.Linear) == []
    ids = torch.randint(0, plain.config.vocab_size, (3, 9))
    with torch.inference_mode():
        torch.testing.assert_close(packed(input_ids=ids).logits, plain(input_ids=ids).logits, rtol=1e-4, atol=1e-4)


def test_a_rows_result_does_not_depend_on_the_rows_beside_it() -> None:
    torch.manual_seed(0)
    linear = nn.Linear(64, 300, bias=True)
    packed = PackedLinear(linear, rows_hint=16)
    rows = torch.randn(16, 64)
    with torch.inference_mode():
        together = packed(rows)
        alone = torch.cat([packed(rows[i : i + 1]) for i in range(16)])
    assert torch.equal(together, alone)


def test_the_runner_packs_on_cpu_and_answers_as_the_plain_model_does(tiny_model_dir: Path) -> None:
    engine = load_engine(tiny_settings(tiny_model_dir))
    assert isinstance(engine, TransformersEngine)
    assert "linear=onednn-packed" in engine.description
    requests = [request(f"job-{i}", message) for i, message in enumerate(MESSAGES)]
    plain = plain_model(tiny_model_dir)
    for result, req in zip(generate_all(engine, requests), requests, strict=True):
        assert result.text == plain_answer(engine, plain, req)


def plain_answer(engine: TransformersEngine, model: PreTrainedModel, req: GenerationRequest) -> str:
    prompt = engine.prompt_ids(req)
    with torch.inference_mode():
        output = model.generate(  # type: ignore[operator]
            input_ids=torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            max_new_tokens=req.max_new_tokens,
            do_sample=False,
            eos_token_id=engine.eos_token_ids,
            pad_token_id=engine.tokenizer.pad_token_id,
        )
    new = output[0, len(prompt) :].tolist()
    end = next((i for i, token in enumerate(new) if token in engine.eos_token_ids), len(new))
    return str(engine.tokenizer.decode(new[:end], skip_special_tokens=True)).strip()


@pytest.mark.parametrize("rows_hint", [1, 16, 64])
def test_any_rows_hint_gives_the_same_layer(rows_hint: int) -> None:
    torch.manual_seed(1)
    linear = nn.Linear(32, 48, bias=False)
    x = torch.randn(5, 7, 32)
    with torch.inference_mode():
        torch.testing.assert_close(PackedLinear(linear, rows_hint)(x), linear(x), rtol=1e-5, atol=1e-5)
