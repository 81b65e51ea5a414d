"""Which dtype a CPU gets: bfloat16 only where the CPU computes it natively, float32 with float16 weights where
it has none but fbgemm can multiply by them, float32 elsewhere; packing that copes with both, and
bfloat16 answers that are still sensible text within their limits (float32 alone promises the same answer in any
batch: the tests of that property pin it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from runner.engines.choice import load_engine
from runner.engines.protocol import generate_all
from runner.errors import ModelLoadError
from runner.weights import loading
from runner.weights.cpu_features import CpuFeatures, read_cpu_features
from runner.weights.loading import choose_dtype
from runner.weights.packing import PackedLinear, pack_linear_layers
from tests.builtin_model import builtin_settings
from tests.test_engine import request

ZEN3 = CpuFeatures("AMD EPYC (Zen 3)", frozenset({"avx2", "fma", "f16c"}))
SANDY_BRIDGE = CpuFeatures("Intel Xeon (Sandy Bridge)", frozenset({"avx"}))
ZEN4 = CpuFeatures("AMD EPYC (Zen 4)", frozenset({"avx2", "avx512f", "avx512bw", "avx512_bf16"}))
SKYLAKE = CpuFeatures("Intel Xeon (Skylake)", frozenset({"avx2", "avx512f", "avx512bw"}))
SAPPHIRE = CpuFeatures("Intel Xeon (Sapphire Rapids)", frozenset({"avx2", "avx512f", "amx_bf16", "amx_tile"}))


def test_auto_picks_bfloat16_only_where_the_cpu_has_it_natively() -> None:
    assert choose_dtype("auto", "cpu", ZEN4).dtype == torch.bfloat16
    assert choose_dtype("auto", "cpu", SAPPHIRE).dtype == torch.bfloat16
    # AVX-512 alone only emulates bfloat16 (torch's own check says yes there): float32 stays faster.
    assert choose_dtype("auto", "cpu", SKYLAKE).dtype == torch.float32
    assert choose_dtype("auto", "cpu", ZEN3).dtype == torch.float32


def test_auto_gives_float16_weights_to_cpus_without_native_bfloat16_that_can_multiply_by_them() -> None:
    zen3 = choose_dtype("auto", "cpu", ZEN3)
    assert (zen3.dtype, zen3.float16_weights) == (torch.float32, True)
    assert "no native bfloat16; float16 weights" in zen3.reason
    assert not choose_dtype("auto", "cpu", ZEN4).float16_weights
    old = choose_dtype("auto", "cpu", SANDY_BRIDGE)  # no F16C, no AVX2: fbgemm cannot
    assert (old.dtype, old.float16_weights) == (torch.float32, False)


def test_a_torch_without_fbgemm_keeps_float32_weights(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(loading, "float16_weights_available", lambda: False)  # as on ARM builds
    choice = choose_dtype("auto", "cpu", ZEN3)
    assert (choice.dtype, choice.float16_weights) == (torch.float32, False)


def test_float16_weights_are_asked_for_by_name_on_a_cpu_only() -> None:
    asked = choose_dtype("float16-weights", "cpu", ZEN4)
    assert (asked.dtype, asked.float16_weights, asked.reason) == (torch.float32, True, "DTYPE=float16-weights")
    assert not choose_dtype("float32", "cpu", ZEN3).float16_weights, "DTYPE=float32 is float32 throughout"
    with pytest.raises(ModelLoadError, match="DTYPE=float16-weights is for a CPU; on cuda use DTYPE=float16"):
        choose_dtype("float16-weights", "cuda", ZEN3)


def test_the_choice_says_why_and_an_explicit_dtype_wins() -> None:
    assert "avx512_bf16" in choose_dtype("auto", "cpu", ZEN4).reason
    assert "no native bfloat16" in choose_dtype("auto", "cpu", ZEN3).reason
    forced = choose_dtype("float32", "cpu", ZEN4)
    assert (forced.dtype, forced.reason) == (torch.float32, "DTYPE=float32")


def test_cpu_features_are_read_from_cpuinfo(tmp_path: Path) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(
        "processor\t: 0\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n\n"
        "processor\t: 1\nmodel name\t: AMD EPYC 9R14\nflags\t\t: fpu avx2 avx512f avx512_bf16\n"
    )
    features = read_cpu_features(cpuinfo)
    assert features.model == "AMD EPYC 9R14" and features.native_bf16 == "avx512_bf16"
    assert features.summary() == "AMD EPYC 9R14 (avx2 avx512f avx512_bf16)"
    assert read_cpu_features(tmp_path / "missing").flags == frozenset()


def test_bfloat16_layers_are_packed_where_onednn_can_and_left_alone_where_it_cannot() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 96), nn.Linear(96, 32)).to(torch.bfloat16)
    probe = torch.randn(4, 64, dtype=torch.bfloat16)
    with torch.inference_mode():
        before = model(probe).float()
    packed = pack_linear_layers(model, rows_hint=16)
    kinds = {type(layer) for layer in model}
    if torch.ops.mkldnn._is_mkldnn_bf16_supported() and packed:
        assert kinds == {PackedLinear}
        with torch.inference_mode():
            torch.testing.assert_close(model(probe).float(), before, rtol=2e-2, atol=2e-2)
    else:
        assert not packed and kinds == {nn.Linear}, "a CPU oneDNN cannot pack bfloat16 on keeps torch's layers"


@pytest.mark.skipif(read_cpu_features().native_bf16 is None, reason="this CPU has no native bfloat16")
def test_on_a_cpu_with_native_bfloat16_auto_packs_bfloat16() -> None:
    choice = choose_dtype("auto", "cpu")
    assert choice.dtype == torch.bfloat16
    model = nn.Sequential(nn.Linear(64, 96)).to(choice.dtype)
    assert pack_linear_layers(model, rows_hint=16)


@pytest.mark.builtin_model
def test_bfloat16_answers_are_sensible_english_within_their_limits(builtin_model_cache: Path) -> None:
    engine = load_engine(builtin_settings(builtin_model_cache, dtype="bfloat16"))
    assert " dtype=bfloat16 " in engine.description
    questions = {
        "paris": ("What is the capital of France?", 16),
        "python": ("What is Python used for?", 24),
        "greeting": ("Hello! How are you today?", 12),
    }
    requests = [request(job, text, max_new_tokens=limit) for job, (text, limit) in questions.items()]
    answers = generate_all(engine, requests)
    for answer in answers:
        text, limit = answer.text or "", questions[answer.job_id][1]
        assert answer.error is None and 0 < answer.new_tokens <= limit, answer
        words = text.split()
        assert len(words) >= 3 and sum(word.strip(".,!?'\"").isalpha() for word in words) >= len(words) / 2, answer
    assert "Paris" in (answers[0].text or ""), answers[0]
    assert len({answer.text for answer in answers}) == len(answers)
