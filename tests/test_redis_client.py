"""The processes' Redis connection: bursts wait for a pooled connection, and start-up waits for Redis itself."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from shared.config.settings import Settings
from shared.storage.client import MAX_CONNECTIONS, create_redis, wait_for_redis
from tests.redis_server import RedisServer


def settings_for(server: RedisServer) -> Settings:
    return Settings.from_env({"REDIS_URL": server.url}, env_file=None)


async def test_more_concurrent_calls_than_connections_wait_instead_of_failing(redis_server: RedisServer) -> None:
    redis = create_redis(settings_for(redis_server))
    try:
        # redis-py's default pool raises MaxConnectionsError here, which callers took for "Redis is down".
        answers = await asyncio.gather(*(redis.sismember("nobody", str(i)) for i in range(MAX_CONNECTIONS * 8)))
        assert answers == [0] * (MAX_CONNECTIONS * 8)
        assert (await redis.info("clients"))["connected_clients"] <= MAX_CONNECTIONS
    finally:
        await redis.aclose()


async def test_start_up_waits_for_redis_saying_so_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    server = RedisServer(tmp_path)
    redis = create_redis(settings_for(server))
    try:
        with caplog.at_level(logging.INFO, logger="shared.storage.client"):
            waiting = asyncio.create_task(wait_for_redis(redis, settings_for(server)))
            await asyncio.sleep(1.0)
            assert not waiting.done()
            await asyncio.to_thread(server.start)
            assert await asyncio.wait_for(waiting, 10) is True
        messages = [record.getMessage() for record in caplog.records]
        assert [m for m in messages if m.startswith("waiting for Redis at")] == [
            f"waiting for Redis at {server.url} (ConnectionError)"
        ]
        assert f"Redis at {server.url} is up" in messages
        assert await redis.ping()
    finally:
        await redis.aclose()
        server.stop()


async def test_wait_for_redis_gives_up_when_asked_to_stop(tmp_path: Path) -> None:
    server = RedisServer(tmp_path)  # never started
    redis = create_redis(settings_for(server))
    stop = asyncio.Event()
    try:
        waiting = asyncio.create_task(wait_for_redis(redis, settings_for(server), stop))
        await asyncio.sleep(0.3)
        stop.set()
        assert await asyncio.wait_for(waiting, 5) is False
    finally:
        await redis.aclose()
