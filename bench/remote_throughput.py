"""`python bench/throughput.py --engine openai --base-url URL --model ID`: what the pipeline costs in front of an
OpenAI-compatible server, in one run.

The same CONCURRENCY questions as bench/throughput.py, NEW_TOKENS tokens each, greedy, two ways:
(direct) CONCURRENCY streamed chat completions sent to the server at once, straight from this process;
(pipeline) a real redis-server and one `python -m runner` with MODEL=openai:ID in front of the same server, the
    jobs enqueued as the bot enqueues them and the answers read from the response list (bench/throughput.py's (b)).
Both send the same requests (the engine's own chat messages and fields) and count the tokens the server reports,
so a server that stops some answers early (ignoring the minimum length) still compares like with like. Each is the
best of ROUNDS runs, alternated. The last line: `engine=openai concurrency=16 direct_tok_s=... pipeline_tok_s=...
efficiency=...` (efficiency = pipeline / direct).
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import tempfile
import time
from pathlib import Path

import openai
from generation_pipeline import ANSWER_TIMEOUT_S, KEYS, NEW_TOKENS, Pipeline, bench_settings, request
from openai import AsyncOpenAI

from runner.engines.openai.chat import MIN_TOKENS_DIALECTS, chat_messages, extra_fields
from runner.engines.protocol import GenerationRequest
from shared.queues.schemas import decode_response

CONCURRENCY = 16
ROUNDS = 3
_ANSWERED = re.compile(r"job (\d+) of user \d+ answered: (\d+) new tokens")


async def accepted_dialect(client: AsyncOpenAI, model: str) -> int:
    """The first way of asking for a minimum answer length that the server takes, as the engine finds it."""
    probe = dataclasses.replace(request(0, bench_settings()), max_new_tokens=1, min_new_tokens=1)
    for dialect in range(len(MIN_TOKENS_DIALECTS)):
        try:
            await send(client, model, probe, dialect)
        except (openai.BadRequestError, openai.UnprocessableEntityError):
            continue
        return dialect
    raise RuntimeError("the server refuses every way of asking for a minimum answer length")


async def send(client: AsyncOpenAI, model: str, req: GenerationRequest, dialect: int) -> int:
    """Streams one answer as the engine asks for it; the tokens the server reports."""
    stream = await client.chat.completions.create(
        model=model,
        messages=chat_messages(req, bench_settings().system_prompt),
        max_tokens=req.max_new_tokens,
        temperature=req.temperature,
        top_p=req.top_p,
        stream=True,
        stream_options={"include_usage": True},
        extra_body=extra_fields(req, dialect),
    )
    tokens = 0
    async with stream:
        async for chunk in stream:
            tokens = chunk.usage.completion_tokens if chunk.usage else tokens
    return tokens


async def direct_tok_s(client: AsyncOpenAI, model: str, dialect: int) -> tuple[float, int]:
    """(direct): every question sent at once; tokens/s until the last answer, and the tokens generated."""
    settings = bench_settings()
    started = time.perf_counter()
    counts = await asyncio.gather(*(send(client, model, request(i, settings), dialect) for i in range(CONCURRENCY)))
    return sum(counts) / (time.perf_counter() - started), sum(counts)


async def pipeline_tok_s(pipeline: Pipeline, concurrency: int = CONCURRENCY) -> tuple[float, int]:
    """(pipeline): as bench/throughput.py's (b), users each sending a question at the same moment; its tokens
    counted from the runner's "answered" lines. Notices other than answers (streamed parts) are passed over."""
    pipeline.rounds += 1
    users = [f"{pipeline.rounds}{i:03d}" for i in range(concurrency)]
    await pipeline.redis.sadd(KEYS.optin, *users)
    jobs = [pipeline.job(user, index) for index, user in enumerate(users)]
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(pipeline.queue.enqueue(job) for job in jobs))
    assert all(o.status == "queued" for o in outcomes), outcomes
    answered: set[str] = set()
    while len(answered) < concurrency:
        assert time.perf_counter() < started + ANSWER_TIMEOUT_S, pipeline.system.logs()
        popped = await pipeline.redis.brpop([KEYS.response], timeout=1)
        if popped is not None and (response := decode_response(popped[1]))["kind"] == "answer":
            answered.add(response["job_id"])
    elapsed = time.perf_counter() - started
    assert answered == {job["id"] for job in jobs}
    tokens = sum((await logged_tokens(pipeline, answered)).values())
    return tokens / elapsed, tokens


async def logged_tokens(pipeline: Pipeline, job_ids: set[str]) -> dict[str, int]:
    """Tokens per job from the runner's "answered" lines, which it writes just after completing the job."""
    deadline = time.perf_counter() + 30
    while True:
        tokens = {job: int(n) for job, n in _ANSWERED.findall(pipeline.system.logs()) if job in job_ids}
        if set(tokens) == job_ids:
            return tokens
        assert time.perf_counter() < deadline, f"answers logged for {len(tokens)} of {len(job_ids)} jobs"
        await asyncio.sleep(0.05)


async def main(base_url: str, model: str, api_key: str, rounds: int) -> None:
    settings = dataclasses.replace(bench_settings(), model=f"openai:{model}", batch_size=CONCURRENCY)
    client = AsyncOpenAI(base_url=base_url, api_key=api_key or "EMPTY", max_retries=0, timeout=600)
    with tempfile.TemporaryDirectory(prefix="remote-throughput-") as work_dir:
        pipeline = Pipeline(Path(work_dir), settings)
        pipeline.system.env.update(OPENAI_BASE_URL=base_url, OPENAI_API_KEY=api_key)
        try:
            dialect = await accepted_dialect(client, model)
            print(
                f"model={model} server={base_url}; {CONCURRENCY} users, {NEW_TOKENS} new tokens each, greedy, "
                f"minimum length asked with {MIN_TOKENS_DIALECTS[dialect][0]}",
                flush=True,
            )
            runner = pipeline.system.start("runner")
            await pipeline.system.wait_for_log(runner, "taking jobs", timeout=180)
            await pipeline_tok_s(pipeline, 2)  # warm-up
            await asyncio.gather(*(send(client, model, request(i, settings), dialect) for i in range(2)))
            direct = piped = 0.0
            for round_number in range(1, rounds + 1):  # alternated, so a slower spell of the machine hits both
                direct_round, direct_tokens = await direct_tok_s(client, model, dialect)
                piped_round, piped_tokens = await pipeline_tok_s(pipeline)
                direct, piped = max(direct, direct_round), max(piped, piped_round)
                print(
                    f"round {round_number}: direct {direct_round:.1f} tok/s ({direct_tokens} tokens), "
                    f"pipeline {piped_round:.1f} tok/s ({piped_tokens} tokens)",
                    flush=True,
                )
        finally:
            await pipeline.close()
            await client.close()
    print(
        f"engine=openai concurrency={CONCURRENCY} direct_tok_s={direct:.1f} pipeline_tok_s={piped:.1f} "
        f"efficiency={piped / direct:.2f}"
    )
