"""A reasoning model's thinking through both engines: never in a partial text shown or in the final answer (a
"thinking…" status meanwhile), never in history, shown as subtext with SHOW_REASONING; `<think>` blocks cut
anywhere in the content, `reasoning_content` deltas, a bare `</think>`, and a model that ran out while thinking."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import torch
from redis.asyncio import Redis
from transformers import DynamicCache

from runner.answer_forms import RAN_OUT_TEXT, THINKING_STATUS, final_form, partial_form
from runner.engines.openai import engine as openai_engine
from runner.engines.protocol import GenerationRequest, GenerationResult
from runner.engines.transformers.engine import TransformersEngine
from runner.generation_thread import GenerationThread
from runner.weights.source import ModelFiles
from runner.worker import Runner
from shared.config.settings import Settings
from shared.queues.job_queue import ClaimedJob
from shared.queues.schemas import Job, Turn, decode_response
from shared.storage.keys import Keys
from tests.openai_stand_in import OpenAIStandIn, ScriptedAnswer
from tests.redis_fixtures import TEST_MODEL, enqueue_opted_in
from tests.test_engine import request, tiny_settings
from tests.test_openai_engine import KEY, engine_for, finish
from tests.tiny_model import CHATML_TEMPLATE

SECRET = "SECRET"
"""Every word of reasoning below holds it: nothing shown without SHOW_REASONING, nor any history, may."""
THOUGHT = "Let me see. SECRET one: 2 + 2.\nSECRET two: that makes 4.\n"
ANSWER = "The answer is 4."
MakeJob = Callable[..., Job]


def cut_every(text: str, size: int) -> tuple[dict[str, str], ...]:
    """Content deltas of `size` characters: the tags are cut across chunks (`<thi` + `nk>`, `</th` + `ink>`)."""
    return tuple({"content": text[i : i + size]} for i in range(0, len(text), size))


# ---- the OpenAI-compatible engine, against the stand-in ------------------------------------------------


@pytest.fixture
async def stand_in() -> AsyncIterator[OpenAIStandIn]:
    server = OpenAIStandIn(api_key=KEY)
    server.chunk_delay_s = 0.01
    await server.start()
    yield server
    await server.stop()


@asynccontextmanager
async def streaming_engine(server: OpenAIStandIn) -> AsyncIterator[tuple[GenerationThread, list[str]]]:
    """An engine past its first answer, stepped by a generation thread that records every partial text."""
    partials: list[str] = []
    engine = engine_for(server.base_url, server.model, KEY)
    thread = GenerationThread(engine, stream_interval_s=0.005, on_partials=lambda c: partials.extend(c.values()))
    thread.start()
    try:
        [first] = thread.submit([request("first", "Hi")])
        assert (await first).text == "answer to: Hi"
        partials.clear()
        yield thread, partials
    finally:
        await finish(engine, thread)


async def answer(thread: GenerationThread, message: str) -> GenerationResult:
    [result] = thread.submit([request(message, message, max_new_tokens=100)])
    return await result


async def answered(server: OpenAIStandIn, message: str) -> tuple[GenerationResult, list[str]]:
    """The message's result, and every partial text the engine streamed."""
    async with streaming_engine(server) as (thread, partials):
        return await answer(thread, message), partials


def assert_hidden(results: list[GenerationResult], partials: list[str]) -> None:
    """What the runner makes of these texts: the status while thinking, then the answer alone."""
    shown = [partial_form(text, show_reasoning=False) for text in partials]
    assert THINKING_STATUS in shown, shown
    assert not [text for text in shown if SECRET in text or "<" in text], shown  # nor a piece of a tag
    for result in results:
        assert result.text is not None
        final = final_form(result.text, show_reasoning=False)
        assert final.shown == final.stored == ANSWER
        with_reasoning = final_form(result.text, show_reasoning=True)
        assert with_reasoning.stored == ANSWER and with_reasoning.shown.endswith(f"\n{ANSWER}")
        assert "-# Let me see. SECRET one: 2 + 2." in with_reasoning.shown


@pytest.mark.parametrize("size", [1, 3, 4, 7])
async def test_a_think_block_cut_anywhere_in_the_content_is_never_shown(stand_in: OpenAIStandIn, size: int) -> None:
    stand_in.scripted["sum"] = ScriptedAnswer(cut_every(f"<think>\n{THOUGHT}</think>\n\n{ANSWER}", size))
    result, partials = await answered(stand_in, "What is the sum?")
    assert_hidden([result], partials)


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
async def test_reasoning_deltas_are_never_shown(stand_in: OpenAIStandIn, field: str) -> None:
    thinking = tuple({field: THOUGHT[i : i + 6]} for i in range(0, len(THOUGHT), 6))
    stand_in.scripted["sum"] = ScriptedAnswer((*thinking, *cut_every(ANSWER, 5)))
    result, partials = await answered(stand_in, "What is the sum?")
    assert_hidden([result], partials)


async def test_a_bare_closing_tag_hides_what_came_before_and_the_next_answers_from_their_start(
    stand_in: OpenAIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    """The chat template opened the block in the prompt. The first such answer shows its thinking while it streams
    (nothing told it apart yet) but not in the final answer; from then on the engine knows, and hides it throughout;
    an answer that stops without thinking is shown whole."""
    stand_in.scripted["sum"] = ScriptedAnswer(cut_every(f"{THOUGHT}</think>\n\n{ANSWER}", 4))
    stand_in.scripted["hello"] = ScriptedAnswer(cut_every("Hello there!", 4))
    caplog.set_level(logging.INFO, logger=openai_engine.__name__)
    async with streaming_engine(stand_in) as (thread, partials):
        first = await answer(thread, "What is the sum?")
        assert first.text is not None and final_form(first.text, show_reasoning=False).shown == ANSWER
        assert [r.getMessage() for r in caplog.records if "thinks before it answers" in r.getMessage()]
        partials.clear()
        assert_hidden([await answer(thread, "What is the sum again?")], partials)
        hello = await answer(thread, "Say hello")
    assert hello.text is not None and final_form(hello.text, show_reasoning=False).shown == "Hello there!"


async def test_a_model_that_runs_out_of_tokens_while_thinking_says_so_in_one_line(stand_in: OpenAIStandIn) -> None:
    stand_in.scripted["long"] = ScriptedAnswer(cut_every(f"<think>\n{THOUGHT}{THOUGHT}", 5), finish_reason="length")
    result, partials = await answered(stand_in, "A long question")
    assert result.text is not None
    assert final_form(result.text, show_reasoning=False).shown == RAN_OUT_TEXT
    assert {partial_form(text, show_reasoning=False) for text in partials} == {THINKING_STATUS}


# ---- the transformers engine, through a runner and Redis --------------------------------------------------


class ScriptedEngine(TransformersEngine):
    """The tiny model made to write a given text (each step's logits point at the script's next token), a few
    milliseconds a step so that partial texts are streamed meanwhile."""

    scripts: dict[str, list[int]]
    written: dict[str, int]

    def forward(
        self,
        rows: Sequence[GenerationRequest],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        logits = super().forward(rows, input_ids, attention_mask, position_ids, cache)
        time.sleep(0.003)
        forced = torch.full_like(logits, -100.0)
        for index, row in enumerate(rows):
            script, step = self.scripts[row.job_id], self.written.get(row.job_id, 0)
            self.written[row.job_id] = step + 1
            forced[index, script[step] if step < len(script) else self.eos_token_ids[0]] = 100.0
        return forced


def scripted_engine(settings: Settings, template_opens_thinking: bool) -> ScriptedEngine:
    model_dir = Path(settings.model)
    engine = ScriptedEngine.load(ModelFiles(str(model_dir), model_dir), settings)
    if template_opens_thinking:  # as DeepSeek-R1's and Qwen3's thinking models' templates end the assistant's cue
        engine.tokenizer.chat_template = CHATML_TEMPLATE.replace("assistant\\n'", "assistant\\n<think>\\n'")
        engine.read_shared_prefix()
    engine.scripts, engine.written = {}, {}
    return engine


async def run_job(
    settings: Settings, template_opens_thinking: bool, written: str, job: Job, *, redis: Redis, keys: Keys
) -> tuple[str, list[str], list[Turn]]:
    """A runner's answer to a job whose model writes `written`: the answer posted, every partial text streamed
    (as the updater shows it), and the conversation's history."""
    engine = scripted_engine(settings, template_opens_thinking)
    engine.scripts[job["id"]] = engine.tokenizer.encode(written, add_special_tokens=False)
    runner = Runner(settings, engine, redis, "r1")
    streamed: list[str] = []
    stream = runner.queue.stream

    async def recording(runner_id: str, partials: Sequence[tuple[ClaimedJob, str]], ttl_s: int) -> list[bool]:
        streamed.extend(text for _, text in partials)
        return await stream(runner_id, partials, ttl_s)

    runner.queue.stream = recording  # type: ignore[method-assign]
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    await enqueue_opted_in(redis, keys, runner.queue, [job])
    answer = None
    while answer is None:
        popped = await redis.brpop([keys.response], timeout=30)
        assert popped is not None, "no answer"
        response = decode_response(popped[1])
        answer = response["content"] if response["kind"] == "answer" else None
    stop.set()
    await running
    return answer, streamed, json.loads(await redis.get(keys.history(job["conversation"])) or "[]")


@pytest.mark.parametrize("show_reasoning", [False, True])
@pytest.mark.parametrize("template_opens_thinking", [False, True])
async def test_the_transformers_engines_thinking_is_never_streamed_posted_or_stored(
    redis: Redis,
    keys: Keys,
    *,
    make_job: MakeJob,
    tiny_model_dir: Path,
    template_opens_thinking: bool,
    show_reasoning: bool,
) -> None:
    """The model writes `<think>…</think>` itself, or (its template opened the block) only `</think>`."""
    settings = tiny_settings(
        tiny_model_dir, model_name=TEST_MODEL, max_new_tokens=200, stream_interval_s=0.01, show_reasoning=show_reasoning
    )
    written = f"{THOUGHT}</think>\n\n{ANSWER}" if template_opens_thinking else f"<think>\n{THOUGHT}</think>\n\n{ANSWER}"
    job = make_job(content="What is 2 + 2?")
    answer, streamed, history = await run_job(settings, template_opens_thinking, written, job, redis=redis, keys=keys)
    assert history == [{"role": "user", "content": "What is 2 + 2?"}, {"role": "assistant", "content": ANSWER}]
    if show_reasoning:
        assert answer == f"-# Let me see. SECRET one: 2 + 2.\n-# SECRET two: that makes 4.\n{ANSWER}"
        assert any(text.startswith("-# Let me see. SECRET") for text in streamed), streamed
    else:
        assert answer == ANSWER
        assert THINKING_STATUS in streamed and not [text for text in streamed if SECRET in text], streamed


async def test_a_transformers_model_cut_off_while_thinking_answers_with_one_line(
    redis: Redis, keys: Keys, make_job: MakeJob, tiny_model_dir: Path
) -> None:
    settings = tiny_settings(tiny_model_dir, model_name=TEST_MODEL, max_new_tokens=12, stream_interval_s=0.01)
    job = make_job(content="What is 2 + 2?")
    answer, streamed, history = await run_job(settings, True, THOUGHT * 3, job, redis=redis, keys=keys)
    assert answer == RAN_OUT_TEXT and history[1] == {"role": "assistant", "content": RAN_OUT_TEXT}
    assert set(streamed) == {THINKING_STATUS}
