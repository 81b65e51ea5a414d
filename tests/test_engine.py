"""Engines: batched greedy generation equals one-at-a-time, jobs join and leave a running batch, failures stay
with their job, the batch keeps to its size and token budget; echo engine and diagnostic."""

from __future__ import annotations

import dataclasses
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
import torch
from transformers import DynamicCache, GenerationConfig

from runner.diagnostic import DIAGNOSTIC_NEW_TOKENS, run_diagnostic
from runner.engines.choice import load_engine
from runner.engines.echo import EchoEngine
from runner.engines.protocol import GenerationRequest, GenerationResult, generate_all
from runner.engines.transformers.engine import TransformersEngine
from runner.engines.transformers.rolling_batch import cache_states
from runner.engines.transformers.shared_prefix import SharedPrefix
from runner.errors import DiagnosticError, ModelLoadError
from runner.weights.source import ModelFiles
from shared.config.settings import Settings
from shared.queues.schemas import Turn
from tests.builtin_model import builtin_settings

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
    batched = generate_all(engine, requests)
    alone = [generate_all(engine, [r])[0] for r in requests]
    assert batched == alone
    assert [r.job_id for r in batched] == [r.job_id for r in requests]
    assert all(r.text is not None and r.error is None for r in batched)
    assert len({r.text for r in batched}) > 1, "the tiny model should answer different prompts differently"


def test_answers_equal_transformers_generate_and_only_new_tokens_are_decoded(engine: TransformersEngine) -> None:
    req = request("job", "What is the capital of France?", HISTORY, repetition_penalty=1.3)
    prompt = engine.prompt_ids(req)
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=12,
        do_sample=False,
        repetition_penalty=1.3,
        eos_token_id=engine.eos_token_ids,
        pad_token_id=engine.tokenizer.pad_token_id,
    )
    with torch.inference_mode():
        output = engine.model.generate(  # type: ignore[operator]
            input_ids=torch.tensor([prompt]),
            attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
            generation_config=config,
        )
    new_ids = output[0, len(prompt) :].tolist()
    [result] = generate_all(engine, [req])
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
    results = generate_all(engine, requests)
    assert [r.job_id for r in results] == ["greedy-1", "sampled", "greedy-2", "short"]
    assert all(r.text is not None for r in results)
    assert results[3].new_tokens <= 3
    assert results[0] == generate_all(engine, [requests[0]])[0]


def test_a_request_that_cannot_be_generated_fails_alone(engine: TransformersEngine) -> None:
    good = mixed_requests()
    requests = [
        good[0],
        request("no-room", "Hi", max_new_tokens=10_000),  # more than the whole context window
        good[1],
        request("bad-penalty", "Hi", repetition_penalty=0.0),  # transformers refuses it
        good[2],
    ]
    results = {r.job_id: r for r in generate_all(engine, requests)}
    assert results["no-room"].text is None
    assert "no room" in (results["no-room"].error or "")
    assert results["bad-penalty"].text is None
    assert "penalty" in (results["bad-penalty"].error or "")
    assert [results[r.job_id] for r in good[:3]] == generate_all(engine, good[:3])


def test_jobs_that_join_a_running_batch_get_the_answers_they_get_alone(engine: TransformersEngine) -> None:
    requests = [*mixed_requests(), request("long", "Hi", HISTORY * 3, max_new_tokens=20)]
    alone = {r.job_id: generate_all(engine, [r])[0] for r in requests}
    engine.add(requests[:2])
    results = engine.step() + engine.step() + engine.step()  # read two prompts, then two tokens each
    engine.add(requests[2:4])
    results += engine.step()
    assert len(engine.running) == 4, "the newcomers joined the two rows already generating"
    engine.add(requests[4:])
    while engine.unfinished:
        results += engine.step()
    assert {r.job_id: r for r in results} == alone


def test_a_finished_job_leaves_and_the_batch_shrinks_back(engine: TransformersEngine) -> None:
    # The short answer has the longer prompt, so the other row is padded for it while both run.
    engine.add([request("long", "Hello there", max_new_tokens=12), request("short", "Hi", HISTORY, max_new_tokens=2)])
    engine.step()
    assert engine.batch.length == len(engine.running[1].prompt)
    [short] = engine.step()
    assert (short.job_id, short.new_tokens) == ("short", 2)
    [long] = engine.running
    assert long.request.job_id == "long"
    # The cache holds the prompt and every token but the newest, which is the next step's input.
    assert engine.batch.length == len(long.prompt) + 1, "the padding the short one needed is gone"
    while engine.unfinished:
        engine.step()
    assert engine.batch.rows == 0 and engine.batch.cache is None


def test_prompts_are_read_from_where_they_stop_sharing_the_system_prompt(engine: TransformersEngine) -> None:
    assert engine.prefix is not None
    prompts = [engine.prompt_ids(r) for r in mixed_requests()]
    assert all(engine.prefix.covers(p) for p in prompts)
    assert engine.tokenizer.decode(engine.prefix.ids).startswith(f"<|im_start|>system\n{engine.system_prompt}")


def test_prompts_the_shared_start_does_not_cover_are_read_whole(
    engine: TransformersEngine, tiny_model_dir: Path
) -> None:
    # A shared start that only the prompts with HISTORY have: the others in the same batch are read whole.
    odd = load_engine(tiny_settings(tiny_model_dir))
    assert isinstance(odd, TransformersEngine) and odd.prefix is not None
    ids = odd.prompt_ids(request("x", "Hi", HISTORY))[: len(odd.prefix.ids) + 3]
    cache = DynamicCache()
    odd._logits(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long), torch.arange(len(ids))[None], cache)
    odd.prefix = SharedPrefix(ids, cache_states(cache))
    requests = mixed_requests()
    assert [odd.prefix.covers(odd.prompt_ids(r)) for r in requests] == [False, True, False, True]
    assert generate_all(odd, requests) == [generate_all(engine, [r])[0] for r in requests]


def test_without_a_shared_start_whole_prompts_are_read(engine: TransformersEngine, tiny_model_dir: Path) -> None:
    bare = load_engine(tiny_settings(tiny_model_dir))
    assert isinstance(bare, TransformersEngine)
    bare.prefix = None
    requests = mixed_requests()
    assert generate_all(bare, requests) == [generate_all(engine, [r])[0] for r in requests]


class CrampedEngine(TransformersEngine):
    """Reserves no room in the cache, so that every step has to grow it."""

    def _room(self) -> int:
        return 0


def test_a_cache_without_room_grows_and_answers_the_same(engine: TransformersEngine, tiny_model_dir: Path) -> None:
    cramped = CrampedEngine.load(ModelFiles(str(tiny_model_dir), tiny_model_dir), tiny_settings(tiny_model_dir))
    requests = [*mixed_requests(), request("long", "Hi", max_new_tokens=100, min_new_tokens=100)]
    assert generate_all(cramped, requests) == generate_all(engine, requests)


class FlakyEngine(TransformersEngine):
    """Fails any forward pass over a job whose message mentions POISON, as an out-of-memory error would; with
    `decode_only`, only decoding steps fail (its prompt reads fine)."""

    calls: list[int]
    decode_only = False

    def forward(
        self,
        rows: Sequence[GenerationRequest],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        self.calls.append(len(rows))
        decoding = input_ids.shape[1] == 1
        if any("POISON" in r.message for r in rows) and (decoding or not self.decode_only):
            raise torch.OutOfMemoryError("simulated: out of memory")
        return super().forward(rows, input_ids, attention_mask, position_ids, cache)


def flaky_engine(model_dir: Path, decode_only: bool) -> FlakyEngine:
    flaky = FlakyEngine.load(ModelFiles(str(model_dir), model_dir), tiny_settings(model_dir))
    flaky.calls, flaky.decode_only = [], decode_only
    return flaky


def test_prompts_that_fail_together_are_read_one_by_one(engine: TransformersEngine, tiny_model_dir: Path) -> None:
    flaky = flaky_engine(tiny_model_dir, decode_only=False)
    good = mixed_requests()[:2]
    results = generate_all(flaky, [good[0], request("poisoned", "POISON"), good[1]])
    assert flaky.calls[:4] == [3, 1, 1, 1]
    assert set(flaky.calls[4:]) == {2}, "the two good jobs still generate together"
    assert results[1].text is None
    assert results[1].error == "generation failed: OutOfMemoryError: simulated: out of memory"
    assert [results[0], results[2]] == generate_all(engine, good)


def test_a_batch_that_fails_mid_answer_is_redone_job_by_job(engine: TransformersEngine, tiny_model_dir: Path) -> None:
    flaky = flaky_engine(tiny_model_dir, decode_only=True)
    good = mixed_requests()[:2]
    results = generate_all(flaky, [good[0], request("poisoned", "POISON"), good[1]])
    assert flaky.calls[:2] == [3, 3], "prompts read together, then the first decoding step fails"
    assert set(flaky.calls[2:]) == {1}, "then each job alone"
    assert results[1].error == "generation failed: OutOfMemoryError: simulated: out of memory"
    assert [results[0], results[2]] == generate_all(engine, good)


class RecordingEngine(TransformersEngine):
    """Records (rows, cache positions per row) of every forward pass."""

    shapes: list[tuple[int, int]]

    def forward(
        self,
        rows: Sequence[GenerationRequest],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        self.shapes.append((attention_mask.shape[0], attention_mask.shape[1]))
        return super().forward(rows, input_ids, attention_mask, position_ids, cache)


@pytest.mark.parametrize(("batch_size", "budget"), [(2, 10_000), (8, 400)])
def test_the_batch_keeps_to_its_size_and_token_budget(
    engine: TransformersEngine, tiny_model_dir: Path, batch_size: int, budget: int
) -> None:
    settings = tiny_settings(tiny_model_dir, batch_size=batch_size, batch_token_budget=budget)
    recording = RecordingEngine.load(ModelFiles(str(tiny_model_dir), tiny_model_dir), settings)
    recording.shapes = []
    requests = [request(f"job-{i}", m, HISTORY if i % 2 else ()) for i, m in enumerate(MESSAGES * 2)]
    results = generate_all(recording, requests)
    assert all(rows <= batch_size and rows * length <= budget for rows, length in recording.shapes)
    assert max(rows for rows, _ in recording.shapes) == 2, "as many jobs as fit do run together"
    assert results == [generate_all(engine, [r])[0] for r in requests]


def test_a_prompt_longer_than_the_budget_is_trimmed_history_first(tiny_model_dir: Path) -> None:
    long_history = HISTORY * 10
    settings = tiny_settings(tiny_model_dir, batch_token_budget=300)
    small = load_engine(settings)
    [result] = generate_all(small, [request("long", "What is the capital of France?", long_history)])
    assert result.text is not None
    assert result.prompt_tokens <= 300 - 12
    [roomy] = generate_all(load_engine(tiny_settings(tiny_model_dir)), [request("long", "Hi", long_history)])
    assert roomy.prompt_tokens > 300, "without the budget, the whole history fits the context"


class EagerToEndEngine(TransformersEngine):
    """A model that always prefers to end its answer."""

    def forward(
        self,
        rows: Sequence[GenerationRequest],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        logits = super().forward(rows, input_ids, attention_mask, position_ids, cache).clone()
        logits[:, self.eos_token_ids] = logits.max() + 10
        return logits


def test_min_new_tokens_holds_the_end_of_sequence_back(tiny_model_dir: Path) -> None:
    eager = EagerToEndEngine.load(ModelFiles(str(tiny_model_dir), tiny_model_dir), tiny_settings(tiny_model_dir))
    free, forced = generate_all(eager, [request("free", "Hi"), request("forced", "Hi", min_new_tokens=5)])
    assert (free.new_tokens, free.text) == (1, "")
    assert forced.new_tokens == 6, "five tokens, then the end-of-sequence it wanted all along"
    assert forced.text


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


def test_echo_engine_answers_with_the_message() -> None:
    echo = load_engine(Settings(model="echo"))
    assert isinstance(echo, EchoEngine)
    results = generate_all(echo, [request("a", "hello  there\nfriend", HISTORY), request("b", "")])
    assert [r.text for r in results] == ["echo: hello  there\nfriend", "echo: "]
    assert results[0] == GenerationResult("a", "echo: hello  there\nfriend", None, prompt_tokens=13, new_tokens=4)


def test_echo_engine_delay_is_paid_once_by_the_requests_that_run_together() -> None:
    echo = load_engine(Settings(model="echo:0.05"))
    started = time.perf_counter()
    generate_all(echo, [request(str(i), "hi") for i in range(4)])
    assert 0.05 <= time.perf_counter() - started < 0.15
    assert echo.description == "model=echo delay_s=0.05"
    echo.add([request("first", "hi")])
    for _ in range(10):
        echo.step()
    echo.add([request("second", "hi")])
    first: list[GenerationResult] = []
    while not first:
        first = echo.step()
    assert [r.job_id for r in first] == ["first"], "the later request joined, and ends its own delay later"
    assert [r.job_id for r in drain(echo)] == ["second"]


def drain(engine: EchoEngine) -> list[GenerationResult]:
    results: list[GenerationResult] = []
    while engine.unfinished:
        results += engine.step()
    return results


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
        self.waiting: list[GenerationRequest] = []

    @property
    def unfinished(self) -> int:
        return len(self.waiting)

    def add(self, requests: Sequence[GenerationRequest]) -> None:
        self.waiting.extend(requests)

    def step(self) -> list[GenerationResult]:
        if self.raises:
            raise RuntimeError("device lost")
        requests, self.waiting = self.waiting, []
        return [GenerationResult.failed(r.job_id, "generation failed: RuntimeError: device lost") for r in requests]


@pytest.mark.parametrize("raises", [True, False])
def test_diagnostic_fails_clearly_when_the_engine_cannot_answer(raises: bool) -> None:
    with pytest.raises(DiagnosticError, match="device lost"):
        run_diagnostic(BrokenEngine(raises), load_s=0.1)


@pytest.mark.builtin_model
def test_builtin_model_loads_from_its_converted_copy_and_answers_in_english(builtin_model_cache: Path) -> None:
    settings = builtin_settings(builtin_model_cache, max_new_tokens=24)
    started = time.perf_counter()
    builtin = load_engine(settings)
    assert time.perf_counter() - started < 5.0, "the converted model should load from the cache quickly"
    assert builtin.description.startswith("model=builtin(SmolLM2-135M-Instruct) device=cpu")
    [result] = generate_all(builtin, [request("paris", "What is the capital of France?", max_new_tokens=24)])
    assert result.text is not None and "Paris" in result.text, result


def test_settings_are_not_mutated_by_loading(tiny_model_dir: Path) -> None:
    settings = tiny_settings(tiny_model_dir)
    load_engine(settings)
    assert settings == dataclasses.replace(settings)
