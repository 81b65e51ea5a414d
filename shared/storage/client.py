"""Connecting to Redis: timeouts longer than any blocking call, retries with backoff, a clear wait at start."""

from __future__ import annotations

import asyncio
import logging
import random

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from shared.config.defaults import DEFAULT_BLOCK_TIMEOUT_S
from shared.config.settings import Settings

SOCKET_TIMEOUT_S = DEFAULT_BLOCK_TIMEOUT_S + 8.0
"""Longer than any blocking Redis call, so a blocked BLMOVE never looks like a dead socket."""

MAX_CONNECTIONS = 64
"""Connections one process opens at most; further calls wait (up to SOCKET_TIMEOUT_S) for a free one."""

REDIS_DOWN_ERRORS = (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError)
"""What a Redis call raises while the server is unreachable; loops retry these and nothing else."""

log = logging.getLogger(__name__)


def create_redis(settings: Settings) -> Redis:
    # A blocking pool: past MAX_CONNECTIONS a call waits for a free connection. redis-py's default pool
    # raises MaxConnectionsError (a ConnectionError) instead, which a burst of messages turned into
    # "Redis is unreachable" for most of them.
    pool = BlockingConnectionPool.from_url(
        settings.redis_url.reveal(),
        max_connections=MAX_CONNECTIONS,
        timeout=SOCKET_TIMEOUT_S,
        decode_responses=True,
        socket_timeout=SOCKET_TIMEOUT_S,
        socket_connect_timeout=5.0,
        health_check_interval=30,
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=1.0), retries=3),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )
    return Redis.from_pool(pool)


class Backoff:
    """Exponential backoff with full jitter between retries of a loop, reset after a success."""

    def __init__(self, base_s: float = 0.1, cap_s: float = 5.0) -> None:
        self._base_s = base_s
        self._cap_s = cap_s
        self._failures = 0

    def reset(self) -> None:
        self._failures = 0

    def next_delay(self) -> float:
        self._failures += 1
        return random.uniform(0, min(self._cap_s, self._base_s * 2**self._failures))

    async def sleep(self) -> None:
        await asyncio.sleep(self.next_delay())


async def wait_for_redis(redis: Redis, settings: Settings, stop: asyncio.Event | None = None) -> bool:
    """Ping until Redis answers, logging once that we wait; False if `stop` was set first."""
    backoff = Backoff(cap_s=2.0)
    logged = False
    while stop is None or not stop.is_set():
        try:
            await redis.ping()
        except REDIS_DOWN_ERRORS as exc:
            if not logged:
                log.warning("waiting for Redis at %s (%s)", settings.redis_url_for_logs, type(exc).__name__)
                logged = True
            await backoff.sleep()
            continue
        if logged:
            log.info("Redis at %s is up", settings.redis_url_for_logs)
        return True
    return False
