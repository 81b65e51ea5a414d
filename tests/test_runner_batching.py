"""The runner's continuous batching against a real redis-server: one job per user in a batch, jobs that arrive
while a batch generates join it, each is completed as it ends, and the event loop never waits on the model."""

from __future__ import annotations

import asyncio
import itertools
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest
import torch
from redis.asyncio import Redis
from transformers import DynamicCache

from runner.answer_forms import EMPTY_ANSWER_TEXT
from runner.engines.echo import EchoEngine
from runner.engines.protocol import GenerationRequest, generate_all
from runner.engines.transformers.engine import TransformersEngine
from runner.weights.source import ModelFiles
from runner.worker import Runner
from shared.config.settings import Settings
from shared.queues.job_queue import Completion, JobQueue
from shared.queues.schemas import Job, decode_response
from shared.storage.keys import Keys
from tests.redis_fixtures import TEST_MODEL, enqueue_opted_in
from tests.test_engine import request, tiny_settings

MakeJob = Callable[..., Job]


async def test_a_batch_never_holds_two_messages_of_one_user(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    runner = Runner(Settings(batch_size=8, model_name=TEST_MODEL), EchoEngine(), redis, "r1")
    chatty = [make_job(user_id="7", content=f"chatty {i}") for i in range(3)]
    others = [make_job(user_id=str(user)) for user in (1, 2, 3)]
    await enqueue_opted_in(redis, keys, queue, [chatty[0], others[0], chatty[1], others[1], chatty[2], others[2]])
    first = await runner.claim_batch()
    assert sorted(c.job["user_id"] for c, _ in first) == ["1", "2", "3", "7"]
    assert [c.job["id"] for c, _ in first if c.job["user_id"] == "7"] == [chatty[0]["id"]]
    assert await runner.claim_batch() == [], "the user's next message waits until the first is answered"
    [chatty_claim] = [c for c, _ in first if c.job["user_id"] == "7"]
    assert await queue.complete("r1", chatty_claim, "answer", "chatty 0")
    [(second, history)] = await runner.claim_batch()
    assert second.job["id"] == chatty[1]["id"]
    assert history == [{"role": "user", "content": "chatty 0"}, {"role": "assistant", "content": "answer"}]


async def test_jobs_that_end_in_the_same_step_are_completed_in_one_round_trip(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob, monkeypatch: pytest.MonkeyPatch
) -> None:
    runner = Runner(Settings(batch_size=8, model_name=TEST_MODEL), EchoEngine(delay_s=0.05), redis, "r1")
    calls: list[int] = []
    complete_many = runner.queue.complete_many

    async def counting(runner_id: str, completions: Sequence[Completion]) -> list[bool]:
        calls.append(len(completions))
        return await complete_many(runner_id, completions)

    monkeypatch.setattr(runner.queue, "complete_many", counting)
    await enqueue_opted_in(redis, keys, queue, [make_job(user_id=str(user)) for user in range(5)])
    runner.generation.start()
    await asyncio.gather(*runner.start_jobs(await runner.claim_batch()))
    await runner.generation.stop()
    assert calls == [5]
    assert runner.stats.answered == 5


async def answers(redis: Redis, keys: Keys, count: int, timeout_s: float = 60) -> dict[str, str]:
    found: dict[str, str] = {}
    deadline = time.monotonic() + timeout_s
    while len(found) < count:
        popped = await redis.brpop([keys.response], timeout=max(0.1, deadline - time.monotonic()))
        assert popped is not None, f"only {len(found)} of {count} answers in {timeout_s} s"
        response = decode_response(popped[1])
        if response["kind"] == "answer":  # "started" notices and partials come first
            found[response["job_id"]] = response["content"]
    return found


class SlowEngine(TransformersEngine):
    """The tiny model at a few milliseconds per step, as a real one takes, recording the jobs of every step."""

    steps: list[list[str]]
    busy: threading.Event

    def forward(
        self,
        rows: Sequence[GenerationRequest],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        self.steps.append([r.job_id for r in rows])
        if len(self.steps) == 5:
            self.busy.set()
        time.sleep(0.005)
        return super().forward(rows, input_ids, attention_mask, position_ids, cache)


async def test_jobs_that_arrive_mid_batch_join_it_and_each_is_answered_as_alone(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob, tiny_model_dir: Path
) -> None:
    settings = tiny_settings(tiny_model_dir, batch_size=4, max_new_tokens=60, model_name=TEST_MODEL)
    engine = SlowEngine.load(ModelFiles(str(tiny_model_dir), tiny_model_dir), settings)
    engine.steps, engine.busy = [], threading.Event()
    messages = ["Hello there", "What is the capital of France?", "Hi", "Our bot counts every job!", "Hey"]
    # The first answer is long (end-of-sequence ignored), so the others arrive while it is being generated.
    jobs = [make_job(user_id=str(i), content=m) for i, m in enumerate(messages)]
    jobs[0]["min_new_tokens"] = 60
    sampling = {"top_p": settings.top_p, "repetition_penalty": settings.repetition_penalty, "max_new_tokens": 60}
    alone = [request(j["id"], j["content"], min_new_tokens=j.get("min_new_tokens", 0), **sampling) for j in jobs]
    expected = {r.job_id: r.text or EMPTY_ANSWER_TEXT for r in [generate_all(engine, [a])[0] for a in alone]}
    engine.steps, engine.busy = [], threading.Event()
    runner = Runner(settings, engine, redis, "r1")
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    ticks: list[float] = []

    async def tick() -> None:
        while not stop.is_set():
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    ticking = asyncio.create_task(tick())
    await enqueue_opted_in(redis, keys, queue, jobs[:1])
    assert await asyncio.to_thread(engine.busy.wait, 10)
    await enqueue_opted_in(redis, keys, queue, jobs[1:])
    got = await answers(redis, keys, len(jobs))
    stop.set()
    await asyncio.gather(running, ticking)
    assert got == expected
    assert any(jobs[0]["id"] in step and len(step) > 1 for step in engine.steps[5:]), "the others joined the first"
    assert max(len(step) for step in engine.steps) <= 4, "never more than BATCH_SIZE jobs at once"
    assert max(b - a for a, b in itertools.pairwise(ticks)) < 0.25, "the event loop was blocked"
    assert runner.stats.answered == len(jobs)
    assert await redis.llen(keys.processing("r1")) == 0


async def test_a_job_a_lost_claim_reply_left_in_the_runners_list_is_answered_once(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    runner = Runner(Settings(batch_size=4, heartbeat_ttl_s=1.0, model_name=TEST_MODEL), EchoEngine(), redis, "r1")
    stray, other = make_job(user_id="1", content="stray"), make_job(user_id="2", content="other")
    await enqueue_opted_in(redis, keys, queue, [stray])
    # What a claim whose reply never arrived leaves behind: the job moved into our list, and nobody told us.
    assert await redis.lmove(keys.query(TEST_MODEL), keys.processing("r1"), "RIGHT", "LEFT") is not None
    await runner.adopt_strays()
    assert not runner.in_flight, "a job seen once may be a claim whose reply is on its way: not taken yet"

    await enqueue_opted_in(redis, keys, queue, [other])
    stop = asyncio.Event()
    running = asyncio.create_task(runner.run(stop))
    found = await answers(redis, keys, 2, timeout_s=10)
    assert found == {stray["id"]: "echo: stray", other["id"]: "echo: other"}
    await asyncio.sleep(1.0)  # three more checks of the list: nothing is taken twice
    stop.set()
    await running
    assert await redis.llen(keys.response) == 0
    assert await redis.llen(keys.processing("r1")) == 0
    assert runner.stats.answered == 2
