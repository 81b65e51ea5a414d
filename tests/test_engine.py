"""Engines: batched greedy generation equals one-at-a-time, failures stay with their job, echo and diagnostic."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch

from runner.diagnostic import DIAGNOSTIC_NEW_TOKENS, run_diagnostic
from runner.echo_engine import EchoEngine
from runner.engine import GenerationRequest, GenerationResult, load_engine
from runner.errors import DiagnosticError, ModelLoadError
from runner.model_source import ModelFiles
from runner.transformers_engine import Sampling, TransformersEngine, choose_dtype
from shared.schemas import Turn
from shared.settings import Settings

HISTORY: list[Turn] = [
    {"role": "user", "content": "The cat likes three apples."},
    {"role": "assistant", "content": "A llama visits the queue."},
]
MESSAGES = ("Hello there", "What is the capital of France? Tell me now, please.", "Hi", "Our bot counts every job!")


def tiny_settings(model_dir: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "model": str(model_dir),
        "device": "cpu",
        "dtype": "float32",
        "max_new_tokens": 12,
        "temperature": 0.0,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]


def request(job_id: str, message: str, history: Sequence[Turn] = (), **overrides: float) -> GenerationRequest:
    values = {"max_new_tokens": 12, "temperature": 0.0, "top_p": 1.0, "repetition_penalty": 1.0, **overrides}
    return GenerationRequest(job_id=job_id, history=history, message=message, **values)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def engine(tiny_model_dir: Path) -> TransformersEngine:
    loaded = load_engine(tiny_settings(tiny_model_dir))
    assert isinstance(loaded, TransformersEngine)
    return loaded


def mixed_requests() -> list[GenerationRequest]:
    """Prompts of different lengths, so the batch is padded."""
    return [request(f"job-{i}", m, HISTORY if i % 2 else ()) for i, m in enumerate(MESSAGES)]


def test_description_names_model_device_and_dtype(engine: TransformersEngine, tiny_model_dir: Path) -> None:
    assert engine.description.startswith(f"model={tiny_model_dir} device=cpu dtype=float32 context=512")


def test_batched_greedy_equals_one_at_a_time(engine: TransformersEngine) -> None:
    requests = mixed_requests()
    batched = engine.generate(requests)
    alone = [engine.generate([r])[0] for r in requests]
    assert batched == alone
    assert [r.job_id for r in batched] == [r.job_id for r in requests]
    assert all(r.text is not None and r.error is None for r in batched)
    assert len({r.text for r in batched}) > 1, "the tiny model should answer different prompts differently"


def test_only_new_tokens_are_decoded(engine: TransformersEngine) -> None:
    req = request("job", "What is the capital of France?", HISTORY)
    prompt = engine.prompt_ids(req)
    with torch.inference_mode():
        output = engine.model.generate(
            input_ids=torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            generation_config=engine.generation_config(Sampling.of(req)),
        )
    new_ids = output[0, len(prompt) :].tolist()
    [result] = engine.generate([req])
    assert result.prompt_tokens == len(prompt)
    assert result.new_tokens == len(new_ids)
    end = next((i for i, t in enumerate(new_ids) if t in engine.eos_token_ids), len(new_ids))
    assert result.text == engine.tokenizer.decode(new_ids[:end], skip_special_tokens=True).strip()
    assert "<|im_start|>" not in (result.text or "")


def test_requests_with_different_sampling_keep_their_order(engine: TransformersEngine) -> None:
    requests = [
        request("greedy-1", "Hello there"),
        request("sampled", "Hello there", temperature=0.8, top_p=0.9, repetition_penalty=1.1),
        request("greedy-2", "Hi"),
        request("short", "Hi", max_new_tokens=3),
    ]
    results = engine.generate(requests)
    assert [r.job_id for r in results] == ["greedy-1", "sampled", "greedy-2", "short"]
    assert all(r.text is not None for r in results)
    assert results[3].new_tokens <= 3
    assert results[0] == engine.generate([requests[0]])[0]


def test_a_request_that_cannot_be_generated_fails_alone(engine: TransformersEngine) -> None:
    good = mixed_requests()
    requests = [
        good[0],
        request("no-room", "Hi", max_new_tokens=10_000),  # more than the whole context window
        good[1],
        request("bad-penalty", "Hi", repetition_penalty=0.0),  # transformers refuses it
        good[2],
    ]
    results = {r.job_id: r for r in engine.generate(requests)}
    assert results["no-room"].text is None
    assert "no room" in (results["no-room"].error or "")
    assert results["bad-penalty"].text is None
    assert "penalty" in (results["bad-penalty"].error or "")
    assert [results[r.job_id] for r in good[:3]] == engine.generate(good[:3])


class FlakyEngine(TransformersEngine):
    """Fails any batch holding a prompt that mentions POISON, as an out-of-memory error would."""

    calls: list[int]

    def generate_batch(self, prompts: list[list[int]], sampling: Sampling) -> list[tuple[str, int]]:
        self.calls.append(len(prompts))
        if any("POISON" in self.tokenizer.decode(p) for p in prompts):
            raise torch.OutOfMemoryError("simulated: out of memory")
        return super().generate_batch(prompts, sampling)


def test_a_failing_batch_is_retried_one_by_one(engine: TransformersEngine, tiny_model_dir: Path) -> None:
    flaky = FlakyEngine.load(ModelFiles(str(tiny_model_dir), tiny_model_dir), tiny_settings(tiny_model_dir))
    flaky.calls = []
    good = mixed_requests()[:2]
    results = flaky.generate([good[0], request("poisoned", "POISON"), good[1]])
    assert flaky.calls == [3, 1, 1, 1]
    assert results[1].text is None
    assert results[1].error == "generation failed: OutOfMemoryError: simulated: out of memory"
    assert [results[0], results[2]] == engine.generate(good)


def test_a_model_without_chat_template_is_refused(tiny_model_dir: Path, tmp_path: Path) -> None:
    base_model = shutil.copytree(tiny_model_dir, tmp_path / "base-model")
    (base_model / "chat_template.jinja").unlink()
    with pytest.raises(ModelLoadError, match="has no chat template"):
        load_engine(tiny_settings(base_model))


def test_max_new_tokens_that_leave_no_room_are_refused_at_load(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match=r"MAX_NEW_TOKENS=600 .* context of 512"):
        load_engine(tiny_settings(tiny_model_dir, max_new_tokens=600))


def test_max_context_tokens_narrows_the_context(tiny_model_dir: Path) -> None:
    assert "context=128" in load_engine(tiny_settings(tiny_model_dir, max_context_tokens=128)).description


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_cuda_without_a_gpu_is_a_clear_error(tiny_model_dir: Path) -> None:
    with pytest.raises(ModelLoadError, match="DEVICE=cuda but torch sees no CUDA device"):
        load_engine(tiny_settings(tiny_model_dir, device="cuda"))


def test_dtype_auto_on_cpu_is_float32_and_an_explicit_dtype_wins() -> None:
    assert choose_dtype("auto", "cpu") == torch.float32
    assert choose_dtype("bfloat16", "cpu") == torch.bfloat16


def test_echo_engine_answers_with_the_message() -> None:
    echo = load_engine(Settings(model="echo"))
    assert isinstance(echo, EchoEngine)
    results = echo.generate([request("a", "hello  there\nfriend", HISTORY), request("b", "")])
    assert [r.text for r in results] == ["echo: hello  there\nfriend", "echo: "]
    assert results[0] == GenerationResult("a", "echo: hello  there\nfriend", None, prompt_tokens=13, new_tokens=4)


def test_echo_engine_delay_is_paid_once_per_call() -> None:
    echo = load_engine(Settings(model="echo:0.05"))
    started = time.perf_counter()
    echo.generate([request(str(i), "hi") for i in range(4)])
    assert 0.05 <= time.perf_counter() - started < 0.15
    assert echo.description == "model=echo delay_s=0.05"


def test_diagnostic_reports_a_short_greedy_generation(engine: TransformersEngine) -> None:
    report = run_diagnostic(engine, load_s=1.5)
    assert report.description == engine.description
    assert report.load_s == 1.5
    assert 1 <= report.new_tokens <= DIAGNOSTIC_NEW_TOKENS
    assert report.generate_s > 0
    assert report.tokens_per_s == pytest.approx(report.new_tokens / report.generate_s)


class BrokenEngine:
    description = "model=broken"

    def __init__(self, raises: bool) -> None:
        self.raises = raises

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self.raises:
            raise RuntimeError("device lost")
        return [GenerationResult.failed(r.job_id, "generation failed: RuntimeError: device lost") for r in requests]


@pytest.mark.parametrize("raises", [True, False])
def test_diagnostic_fails_clearly_when_the_engine_cannot_answer(raises: bool) -> None:
    with pytest.raises(DiagnosticError, match="device lost"):
        run_diagnostic(BrokenEngine(raises), load_s=0.1)


@pytest.mark.builtin_model
def test_builtin_model_converts_once_then_answers_in_english(tmp_path: Path) -> None:
    # With the default SYSTEM_PROMPT ("You are Llama, ...") the 135M model answers this question in French.
    system_prompt = "You are a helpful assistant chatting in a Discord server. Answer concisely and accurately."
    settings = Settings(
        model="builtin", device="cpu", max_new_tokens=24, system_prompt=system_prompt, model_cache_dir=tmp_path
    )
    load_engine(settings)  # converts the packaged GGUF into the cache
    started = time.perf_counter()
    builtin = load_engine(settings)
    assert time.perf_counter() - started < 5.0, "the converted model should load from the cache quickly"
    assert builtin.description.startswith("model=builtin(SmolLM2-135M-Instruct) device=cpu")
    [result] = builtin.generate([request("paris", "What is the capital of France?", max_new_tokens=24)])
    assert result.text is not None and "Paris" in result.text, result


def test_settings_are_not_mutated_by_loading(tiny_model_dir: Path) -> None:
    settings = tiny_settings(tiny_model_dir)
    load_engine(settings)
    assert settings == dataclasses.replace(settings)
