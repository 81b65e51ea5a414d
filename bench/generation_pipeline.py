"""What the generation benchmarks share: the questions, the settings they run with, one request, and the pipeline
(a redis-server and one `python -m runner`, fed jobs the way the bot feeds them). bench/throughput.py and
bench/remote_throughput.py both import it; neither imports the other's internals."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

from runner.engines.choice import served_model_name  # noqa: E402
from runner.engines.protocol import GenerationRequest  # noqa: E402
from shared.config.settings import Settings  # noqa: E402
from shared.queues.job_queue import JobQueue  # noqa: E402
from shared.queues.jobs import new_job  # noqa: E402
from shared.queues.schemas import Job, Response, decode_response  # noqa: E402
from shared.storage.keys import Keys  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.system import System  # noqa: E402

NEW_TOKENS = 64
"""Tokens every request generates (end-of-sequence ignored), so that every way does the same work."""
MOST_USERS = 32
"""The largest concurrency measured: the runner's BATCH_SIZE."""
DEFAULT_CACHE_DIR = "/tmp/llamabot-bench-cache"
"""Where the built-in model is converted once (~20 s) and found by later runs; MODEL_CACHE_DIR overrides it."""
QUESTIONS = json.loads((ROOT / "bench" / "questions.json").read_text())
KEYS = Keys()
ANSWER_TIMEOUT_S = 300.0


def bench_settings() -> Settings:
    env = {"MODEL": "builtin", "MODEL_CACHE_DIR": DEFAULT_CACHE_DIR, "TEMPERATURE": "0", **os.environ}
    settings = Settings.from_env(env, env_file=None)
    return dataclasses.replace(settings, batch_size=MOST_USERS, max_new_tokens=NEW_TOKENS)


def request(index: int, settings: Settings) -> GenerationRequest:
    return GenerationRequest(
        job_id=f"q{index}",
        history=(),
        message=QUESTIONS[index % len(QUESTIONS)],
        max_new_tokens=NEW_TOKENS,
        temperature=0.0,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
        min_new_tokens=NEW_TOKENS,
    )


class Pipeline:
    """A redis-server and one `python -m runner`, fed the way the bot feeds it."""

    def __init__(self, work_dir: Path, settings: Settings) -> None:
        self.server = RedisServer(work_dir)
        self.server.start()
        self.redis = Redis.from_url(self.server.url, decode_responses=True)
        self.queue = JobQueue(self.redis, KEYS, Settings(rate_limit_per_minute=10_000))
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": os.environ.get("HOME", "/tmp"),
            "PYTHONPATH": str(ROOT),
            "PYTHONUNBUFFERED": "1",
            "HF_HUB_OFFLINE": "1",
            "TOKENIZERS_PARALLELISM": "false",
            "REDIS_URL": self.server.url,
            "MODEL": settings.model,
            "MODEL_CACHE_DIR": str(settings.model_cache_dir),
            "DEVICE": settings.device,
            "DTYPE": settings.dtype,
            "BATCH_SIZE": str(settings.batch_size),
            "MAX_NEW_TOKENS": str(NEW_TOKENS),
            "TEMPERATURE": "0",
        }
        self.system = System(env, work_dir)
        self.rounds = 0
        self.model = served_model_name(settings)
        """The model's queue the runner claims from, as the bot routes jobs to the only model served."""

    async def start(self) -> None:
        runner = self.system.start("runner")
        await self.system.wait_for_log(runner, "taking jobs", timeout=180)
        await self.tok_s(2)  # warm-up: the runner's first batch pays one-off allocations

    async def tok_s(self, concurrency: int) -> float:
        """(b): `concurrency` users each send one question at the same moment; tokens/s until the last answer."""
        self.rounds += 1
        users = [f"{self.rounds}{i:03d}" for i in range(concurrency)]
        await self.redis.sadd(KEYS.optin, *users)
        jobs = [self.job(user, index) for index, user in enumerate(users)]
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(self.queue.enqueue(job) for job in jobs))
        assert all(o.status == "queued" for o in outcomes), outcomes
        answers: list[Response] = []
        deadline = started + ANSWER_TIMEOUT_S
        while len(answers) < concurrency:
            if time.perf_counter() > deadline:
                raise TimeoutError(f"{len(answers)} of {concurrency} answers in time:\n{self.system.logs()}")
            # Short blocking pops: redis-py's socket timeout would cut a long one.
            popped = await self.redis.brpop([KEYS.response], timeout=1)
            if popped is not None:
                response = decode_response(popped[1])
                if response["kind"] not in ("started", "partial"):  # the updater's notices, not answers
                    answers.append(response)
        elapsed = time.perf_counter() - started
        assert {a["job_id"] for a in answers} == {j["id"] for j in jobs}
        assert all(a["kind"] == "answer" for a in answers), answers
        return concurrency * NEW_TOKENS / elapsed

    def job(self, user: str, index: int) -> Job:
        question = QUESTIONS[index % len(QUESTIONS)]
        job = new_job(f"{self.rounds}{index:04d}", user, "900", question, guild_id="800", model=self.model)
        job.update(max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, temperature=0.0)
        return job

    async def close(self) -> None:
        self.system.stop_all()
        await self.redis.aclose()
        self.server.stop()
