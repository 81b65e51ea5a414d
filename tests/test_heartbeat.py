"""Heartbeats and reaping against a real redis-server that this test stops and starts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from shared.storage.client import REDIS_DOWN_ERRORS
from shared.storage.heartbeat import Heartbeat
from shared.storage.keys import Keys
from tests.redis_server import RedisServer

KEYS = Keys()
TTL_S = 5.0


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def server_and_client(tmp_path: Path) -> AsyncIterator[tuple[RedisServer, Redis]]:
    server = RedisServer(tmp_path)
    server.start()
    client = Redis.from_url(server.url, decode_responses=True, socket_connect_timeout=0.5)
    try:
        yield server, client
    finally:
        await client.aclose()
        server.stop()


async def test_a_silent_peer_is_reaped_at_once_when_there_was_no_outage(
    server_and_client: tuple[RedisServer, Redis],
) -> None:
    _, redis = server_and_client
    reaped: list[str] = []
    await Heartbeat(redis, KEYS, "runner", "gone", TTL_S).beat()
    await redis.delete(KEYS.heartbeat("runner", "gone"))  # its heartbeat expired
    await Heartbeat(redis, KEYS, "runner", "live", TTL_S, clock=Clock()).beat_and_reap(record(reaped))
    assert reaped == ["gone"]


async def test_after_an_outage_a_worker_waits_one_ttl_before_reaping(
    server_and_client: tuple[RedisServer, Redis],
) -> None:
    server, redis = server_and_client
    clock, reaped = Clock(), []
    live = Heartbeat(redis, KEYS, "runner", "live", TTL_S, clock=clock)
    peer = Heartbeat(redis, KEYS, "runner", "peer", TTL_S)
    await live.beat_and_reap(record(reaped))
    await peer.beat()

    server.stop()
    with pytest.raises(REDIS_DOWN_ERRORS):
        await live.beat_and_reap(record(reaped))
    server.start()
    await redis.delete(KEYS.heartbeat("runner", "peer"))  # expired during the outage; the peer beats again soon

    await live.beat_and_reap(record(reaped))
    clock.now += TTL_S - 0.1
    await live.beat_and_reap(record(reaped))
    assert reaped == [], "a peer that had no chance to beat again was taken for dead"
    clock.now += 0.2
    await live.beat_and_reap(record(reaped))
    assert reaped == ["peer"], "a peer silent for a whole TTL after the outage must be reaped"


def record(reaped: list[str]):  # type: ignore[no-untyped-def]
    async def reap(peer: str) -> None:
        reaped.append(peer)

    return reap
