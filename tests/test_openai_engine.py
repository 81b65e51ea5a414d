"""The OpenAI-compatible engine: against a real `transformers serve` (answers stream in, requests are in flight
together, sampling settings reach the server) and against the stand-in (the server going away, 5xx, 4xx, a
refused key); the start-up diagnostic's refusals; and a runner of this engine never importing torch."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from runner.diagnostic import run_diagnostic
from runner.engines.choice import load_engine
from runner.engines.openai import engine as openai_engine
from runner.engines.openai.engine import OpenAIEngine
from runner.engines.protocol import GenerationRequest, GenerationResult, generate_all
from runner.errors import DiagnosticError, ModelLoadError
from runner.generation_thread import GenerationThread
from shared.config.secret import Secret
from shared.config.settings import Settings
from tests.openai_server import ServedModel, start_transformers_serve, streamed_answer
from tests.openai_stand_in import OpenAIStandIn, answer_text
from tests.redis_server import free_port
from tests.system import PROJECT_ROOT
from tests.test_engine import HISTORY, request

SYSTEM_PROMPT = "You are a helpful assistant."
KEY = "sk-test-0123456789abcdefghijklmnop"


def engine_for(base_url: str, model: str, api_key: str = "", max_in_flight: int = 8) -> OpenAIEngine:
    return OpenAIEngine(model, base_url, Secret(api_key), SYSTEM_PROMPT, max_in_flight)


def asked_directly(server: ServedModel, req: GenerationRequest) -> tuple[str, int]:
    """The server's answer to the same conversation, streamed to a plain client, and its token count."""
    messages = [
        {"role": "system", "content": SYSTEM_PROMPT},
        *({"role": t["role"], "content": t["content"]} for t in req.history),
        {"role": "user", "content": req.message},
    ]
    return streamed_answer(server, messages, req.max_new_tokens, req.temperature, req.top_p)


@pytest.fixture
def served_engine(openai_server: ServedModel) -> Iterator[OpenAIEngine]:
    engine = engine_for(openai_server.base_url, openai_server.model)
    yield engine
    engine.close()


# ---- against transformers serve ----------------------------------------------------------------------


def test_answers_stream_in_and_are_the_servers_answers(served_engine: OpenAIEngine, openai_server: ServedModel) -> None:
    # The first prompt's greedy answer runs to ~230 tokens before the end of sequence: long enough to watch.
    long = request("long", "The cat likes three apples.", max_new_tokens=300)
    with_history = request("with-history", "What is the capital of France?", HISTORY, max_new_tokens=100)
    served_engine.add([long, with_history])
    partials: list[str] = []
    results: list[GenerationResult] = []
    while served_engine.unfinished:
        results += served_engine.step()
        partials += [text for job_id, text in served_engine.partial_texts().items() if job_id == "long"]
    assert served_engine.partial_texts() == {}
    for req in (long, with_history):
        [result] = [r for r in results if r.job_id == req.job_id]
        text, tokens = asked_directly(openai_server, req)
        assert result.error is None and result.text == text
        assert result.new_tokens == tokens and result.prompt_tokens > 0
    [long_text] = [r.text for r in results if r.job_id == "long"]
    assert long_text is not None
    assert len(set(partials)) >= 5, f"the answer should arrive in pieces, saw {len(set(partials))}"
    assert all(long_text.startswith(partial) for partial in partials)
    assert [len(p) for p in partials] == sorted(len(p) for p in partials)


def test_sampling_settings_reach_the_server(served_engine: OpenAIEngine) -> None:
    prompt = "Hello, how are you?"
    short, longer, greedy, greedy_again = generate_all(
        served_engine,
        [
            request("short", prompt, max_new_tokens=5),
            request("longer", prompt, max_new_tokens=9),
            request("greedy", prompt, max_new_tokens=12),
            request("greedy-again", prompt, max_new_tokens=12),
        ],
    )
    assert (short.new_tokens, longer.new_tokens) == (5, 9)
    assert greedy.text == greedy_again.text
    hot = generate_all(
        served_engine, [request(f"hot{i}", prompt, max_new_tokens=12, temperature=2.0) for i in range(3)]
    )
    assert len({r.text for r in hot} | {greedy.text}) > 1, "temperature 2 should not answer as greedy does"
    # A nucleus of one token is the greedy choice, whatever the temperature.
    [narrow] = generate_all(served_engine, [request("narrow", prompt, max_new_tokens=12, temperature=2.0, top_p=0.01)])
    assert narrow.text == greedy.text


def test_a_minimum_answer_length_reaches_transformers_serve(
    served_engine: OpenAIEngine, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger=openai_engine.__name__):
        results = generate_all(
            served_engine, [request(f"bench{i}", "Hi", max_new_tokens=30, min_new_tokens=30) for i in range(2)]
        )
    assert [(r.error, r.new_tokens) for r in results] == [(None, 30), (None, 30)]
    # transformers serve refuses vLLM's min_tokens with 422, and takes it inside a generation_config.
    [switched] = [r.getMessage() for r in caplog.records if "minimum answer length" in r.getMessage()]
    assert "generation_config" in switched


@pytest.fixture(scope="module")
def batching_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    """`transformers serve --continuous-batching`: requests in flight together are generated together."""
    served = start_transformers_serve(tiny_model_dir, tmp_path_factory.mktemp("cb-server"), continuous_batching=True)
    yield served
    served.stop()


def test_requests_are_in_flight_together(batching_server: ServedModel) -> None:
    engine = engine_for(batching_server.base_url, batching_server.model, max_in_flight=8)
    try:
        generate_all(engine, [request("warm-up", "Hi", max_new_tokens=4)])  # the server sets its batching up
        prompts = [f"Question number {i}: how are you?" for i in range(8)]
        started = time.perf_counter()
        alone = generate_all(engine, [request("alone", prompts[0], max_new_tokens=64)])
        alone_s = time.perf_counter() - started
        started = time.perf_counter()
        together = generate_all(engine, [request(f"q{i}", p, max_new_tokens=64) for i, p in enumerate(prompts)])
        together_s = time.perf_counter() - started
    finally:
        engine.close()
    assert all(r.error is None for r in [*alone, *together])
    # One at a time, eight answers would take ~8x one; in flight together the server batches them.
    assert together_s < 4 * alone_s, f"8 requests took {together_s:.2f} s, one alone {alone_s:.2f} s"


# ---- start-up: a server that cannot be used stops the runner -------------------------------------------


@pytest.fixture
async def stand_in() -> AsyncIterator[OpenAIStandIn]:
    server = OpenAIStandIn(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


async def diagnose(base_url: str, model: str, api_key: str) -> str:
    engine = engine_for(base_url, model, api_key)
    try:
        with pytest.raises(DiagnosticError) as failed:
            await asyncio.to_thread(run_diagnostic, engine, 0.0)
    finally:
        await asyncio.to_thread(engine.close)  # it runs its own event loop
    return str(failed.value)


async def test_the_diagnostic_fails_clearly_for_a_server_it_cannot_use(stand_in: OpenAIStandIn) -> None:
    down = await diagnose(f"http://127.0.0.1:{free_port()}/v1", stand_in.model, KEY)
    assert "is unreachable (ConnectError)" in down
    wrong_key = "sk-wrong-9876543210zyxwvutsrq"
    refused = await diagnose(stand_in.base_url, stand_in.model, wrong_key)
    assert "refused OPENAI_API_KEY (HTTP 401)" in refused and wrong_key not in refused
    assert "set OPENAI_API_KEY" in await diagnose(stand_in.base_url, stand_in.model, "")
    unknown = await diagnose(stand_in.base_url, "no-such-model", KEY)
    assert "does not serve model 'no-such-model' (HTTP 404" in unknown


def test_the_diagnostic_of_a_server_that_answers_reports_its_speed(served_engine: OpenAIEngine) -> None:
    report = run_diagnostic(served_engine, load_s=0.0)
    assert report.new_tokens > 0 and report.tokens_per_s > 0
    assert report.description.startswith("model=openai:")


def test_an_openai_model_needs_a_server_url() -> None:
    with pytest.raises(ModelLoadError, match="OPENAI_BASE_URL"):
        load_engine(Settings(model="openai:llama3.2"))
    with pytest.raises(ModelLoadError, match="needs the id"):
        load_engine(Settings(model="openai:", openai_base_url="http://127.0.0.1:1/v1"))


def test_a_runner_in_front_of_a_server_never_imports_torch() -> None:
    code = (
        "import sys\n"
        "import runner.__main__\n"
        "from runner.engines.choice import load_engine\n"
        "from shared.config.settings import Settings\n"
        "engine = load_engine(Settings(model='openai:llama3.2:1b', openai_base_url='http://127.0.0.1:1/v1'))\n"
        "assert type(engine).__name__ == 'OpenAIEngine' and engine.model == 'llama3.2:1b', engine.description\n"
        "heavy = sorted(m for m in ('torch', 'transformers', 'numpy') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, check=True, timeout=60)


# ---- faults, against the stand-in ----------------------------------------------------------------------


async def started_engine(server: OpenAIStandIn) -> tuple[OpenAIEngine, GenerationThread]:
    """An engine past its first answer (as after the runner's diagnostic), stepped by a generation thread."""
    engine = engine_for(server.base_url, server.model, KEY)
    thread = GenerationThread(engine)
    thread.start()
    [first] = thread.submit([request("first", "Hi")])
    assert (await first).text == "answer to: Hi"
    return engine, thread


async def finish(engine: OpenAIEngine, thread: GenerationThread) -> None:
    await thread.stop()
    await asyncio.to_thread(engine.close)


async def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_a_server_gone_mid_answer_is_waited_for_and_the_answer_comes_whole(
    stand_in: OpenAIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    stand_in.chunk_delay_s = 0.05
    engine, thread = await started_engine(stand_in)
    caplog.set_level(logging.INFO, logger=openai_engine.__name__)
    try:
        [answer] = thread.submit([request("job", "one two three four five six seven eight")])
        await wait_until(lambda: stand_in.chunks_sent >= 4)
        await stand_in.stop()
        await wait_until(lambda: not engine.accepting)
        await asyncio.sleep(1.0)
        assert not answer.done() and not engine.accepting
        await stand_in.start()
        result = await asyncio.wait_for(answer, 30)
        assert engine.accepting
    finally:
        await finish(engine, thread)
    assert result.error is None and result.text == answer_text(stand_in.bodies[-1])
    lines = [r.getMessage() for r in caplog.records]
    assert len([line for line in lines if "is unreachable" in line]) == 1, lines
    assert len([line for line in lines if "answers again" in line]) == 1, lines


async def test_server_errors_are_retried_a_few_times_then_fail_the_job(
    stand_in: OpenAIStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(openai_engine, "SERVER_ERROR_BACKOFF_S", 0.01)
    engine, thread = await started_engine(stand_in)
    try:
        stand_in.next_statuses.extend([500, 503])
        [recovered] = thread.submit([request("recovered", "Hi")])
        assert (await recovered).text == "answer to: Hi"
        sent = len(stand_in.statuses)
        stand_in.next_statuses.extend([500] * 10)
        [lost] = thread.submit([request("lost", "Hi")])
        result = await lost
    finally:
        await finish(engine, thread)
    assert stand_in.statuses[1:4] == [500, 503, 200]
    assert len(stand_in.statuses) - sent == 1 + openai_engine.SERVER_ERROR_RETRIES
    assert result.text is None and result.error is not None and "HTTP 500" in result.error


async def test_a_refused_request_fails_its_job_alone_and_at_once(stand_in: OpenAIStandIn) -> None:
    stand_in.refuse_containing["too long"] = 400
    engine, thread = await started_engine(stand_in)
    try:
        refused, answered = await asyncio.gather(
            *thread.submit([request("refused", "this is too long"), request("answered", "fine")])
        )
    finally:
        await finish(engine, thread)
    assert refused.text is None and refused.error is not None
    assert "HTTP 400: this request cannot be answered (too long)" in refused.error
    assert answered.text == "answer to: fine"
    assert stand_in.statuses.count(400) == 1


async def test_a_refused_key_stops_the_engine_taking_jobs_and_never_shows_the_key(
    stand_in: OpenAIStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    engine, thread = await started_engine(stand_in)
    caplog.set_level(logging.INFO, logger=openai_engine.__name__)
    try:
        stand_in.api_key = "sk-rotated-key-the-runner-does-not-have"
        [answer] = thread.submit([request("job", "Hi again")])
        await wait_until(lambda: not engine.accepting)
        await wait_until(lambda: stand_in.statuses.count(401) >= 3)
        assert not answer.done()
        stand_in.api_key = KEY
        result = await asyncio.wait_for(answer, 30)
    finally:
        await finish(engine, thread)
    assert result.text == "answer to: Hi again"
    refusals = [r.getMessage() for r in caplog.records if "refused OPENAI_API_KEY (HTTP 401)" in r.getMessage()]
    assert len(refusals) == 1
    assert KEY not in caplog.text and KEY not in engine.description
