"""The generation thread: jobs join while others generate, the event loop keeps running, a crash reaches callers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from runner.engines.choice import load_engine
from runner.engines.protocol import GenerationRequest, GenerationResult, generate_all
from runner.engines.transformers.engine import TransformersEngine
from runner.generation_thread import GenerationThread
from tests.test_engine import HISTORY, MESSAGES, request, tiny_settings


class SlowEngine:
    """Answers each request after `steps` steps of `step_s` seconds, counting the rows of every step."""

    description = "model=slow"

    def __init__(self, steps: int, step_s: float) -> None:
        self.steps, self.step_s = steps, step_s
        self.running: dict[str, int] = {}
        self.rows_per_step: list[int] = []

    @property
    def unfinished(self) -> int:
        return len(self.running)

    def add(self, requests: Sequence[GenerationRequest]) -> None:
        self.running.update((r.job_id, 0) for r in requests)

    def step(self) -> list[GenerationResult]:
        time.sleep(self.step_s)  # holds no lock the event loop needs, as a forward pass
        self.rows_per_step.append(len(self.running))
        for job_id in self.running:
            self.running[job_id] += 1
        done = [job_id for job_id, steps in self.running.items() if steps >= self.steps]
        for job_id in done:
            del self.running[job_id]
        return [GenerationResult(job_id, f"answer {job_id}", None, 1, self.steps) for job_id in done]


async def test_the_event_loop_runs_while_a_batch_generates_and_late_jobs_join_it() -> None:
    engine = SlowEngine(steps=5, step_s=0.05)
    thread = GenerationThread(engine)
    thread.start()
    [first] = thread.submit([request("first", "hi")])
    ticks = 0
    while ticks < 8:  # ~0.1 s: the first job is mid-way through its 5 steps
        await asyncio.sleep(0.0125)
        ticks += 1
    assert not first.done()
    [second] = thread.submit([request("second", "hi")])
    assert (await first).text == "answer first"
    assert not second.done(), "the late job joined the batch: it has steps left when the first one ends"
    assert (await second).text == "answer second"
    await thread.stop()
    assert 2 in engine.rows_per_step, "both jobs were in one step"


async def test_requests_submitted_together_join_in_the_same_step_and_stop_waits_for_them() -> None:
    engine = SlowEngine(steps=3, step_s=0.02)
    thread = GenerationThread(engine)
    thread.start()
    futures = thread.submit([request(str(i), "hi") for i in range(3)])
    await thread.stop()
    assert [f.result().text for f in futures] == ["answer 0", "answer 1", "answer 2"]
    assert engine.rows_per_step == [3, 3, 3]


class CrashingEngine(SlowEngine):
    def step(self) -> list[GenerationResult]:
        raise MemoryError("the engine is broken")


async def test_a_crashed_engine_fails_every_waiting_caller() -> None:
    thread = GenerationThread(CrashingEngine(steps=1, step_s=0))
    thread.start()
    with pytest.raises(RuntimeError, match=r"generation thread has stopped.*the engine is broken"):
        await thread.submit([request("a", "hi")])[0]
    with pytest.raises(RuntimeError, match="generation thread has stopped"):
        await thread.submit([request("b", "hi")])[0]


async def test_jobs_submitted_at_different_times_get_their_unbatched_answers(tiny_model_dir: Path) -> None:
    engine = load_engine(tiny_settings(tiny_model_dir, batch_size=4))
    assert isinstance(engine, TransformersEngine)
    requests = [request(f"job-{i}", m, HISTORY if i % 2 else ()) for i, m in enumerate(MESSAGES * 2)]
    alone = [generate_all(engine, [r])[0] for r in requests]
    thread = GenerationThread(engine)
    thread.start()
    futures = []
    for r in requests:
        futures += thread.submit([r])
        await asyncio.sleep(0.01)
    assert [await f for f in futures] == alone
    await thread.stop()
