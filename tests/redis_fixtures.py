"""Redis fixtures: one real redis-server per session, flushed before every test, and job factories."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from shared.config.settings import Settings
from shared.queues.job_queue import JobQueue
from shared.queues.jobs import new_job
from shared.queues.schemas import Job
from shared.storage.keys import Keys
from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


@pytest.fixture
def keys() -> Keys:
    return Keys()


@pytest.fixture
def queue_settings() -> Settings:
    """Small bounds, so that tests reach them quickly."""
    return Settings(max_pending_per_user=3, max_attempts=3, history_max_turns=6, history_ttl_days=1 / 24)


@pytest.fixture
def queue(redis: Redis, keys: Keys, queue_settings: Settings) -> JobQueue:
    return JobQueue(redis, keys, queue_settings)


_message_ids = itertools.count(1_100_000_000_000_000_000)

TEST_MODEL = "test-model"
"""The model the jobs of make_job are routed to, as the bot would route them to the only model served."""


@pytest.fixture
def make_job() -> Callable[..., Job]:
    """Builds jobs as the bot does; each gets a new snowflake-like id."""

    def build(user_id: str = "42", content: str = "hello", channel_id: str = "900", **extra: object) -> Job:
        job = new_job(str(next(_message_ids)), user_id, channel_id, content, guild_id="800", model=TEST_MODEL)
        job.update(extra)  # type: ignore[typeddict-item]
        return job

    return build


@pytest.fixture
def project_root() -> Path:
    return Path(__file__).resolve().parent.parent


async def enqueue_opted_in(redis: Redis, keys: Keys, queue: JobQueue, jobs: list[Job]) -> None:
    """Opts the jobs' users in and enqueues the jobs, as the bot would accept them."""
    await redis.sadd(keys.optin, *{job["user_id"] for job in jobs})
    for job in jobs:
        assert (await queue.enqueue(job)).status in ("queued", "pending")
