"""Which models there are: the models set, whose queues every script that moves jobs is given (cached in each
process), and the models that live runners serve right now (read from their heartbeats)."""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from redis.asyncio import Redis

from shared.config.defaults import STALE_RETRIES
from shared.errors import StaleReadError
from shared.queues.model_names import is_model_name
from shared.storage.keys import Keys

T = TypeVar("T")

STALE_MODELS = "stale_models"
"""What a script returns, having changed nothing, when the models set holds a model whose queue it was not given."""

LIVE_MODELS_CACHE_S = 1.0
"""How long the bot routes messages by the live models it last read, rather than reading them for each message."""

QueueSection = tuple[list[str], list[str | int]]
"""The KEYS and ARGV that give a script the job queues (see declared_queues in shared/storage/lua/_common.lua)."""


class KnownModels:
    """The members of the models set, as this process last read them.

    A script that may move a job onto its model's queue is given the queue of every model read here, and refuses
    (STALE_MODELS) when the set holds one more; `run` then reads the set again and retries. So the set is read once,
    and again only when a model appears, never for each job.
    """

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._names: tuple[str, ...] | None = None

    async def names(self) -> tuple[str, ...]:
        return self._names if self._names is not None else await self.refresh()

    async def refresh(self) -> tuple[str, ...]:
        members = await self._redis.smembers(self._keys.models)
        self._names = tuple(sorted(name for name in members if is_model_name(name)))
        return self._names

    def section(self, names: Sequence[str]) -> QueueSection:
        """The legacy queue and each named model's queue in KEYS; how many names, then the names, in ARGV."""
        return [self._keys.legacy_query, *(self._keys.query(name) for name in names)], [len(names), *names]

    async def run(self, attempt: Callable[[tuple[str, ...]], Awaitable[T]], what: str) -> T:
        """`attempt(names)` runs a script given those models' queues; run again with the set read afresh while
        it answers STALE_MODELS."""
        names = await self.names()
        for _ in range(STALE_RETRIES):
            result = await attempt(names)
            if not is_stale(result):
                return result
            names = await self.refresh()
        raise StaleReadError(f"the models set kept changing while {what}")


def is_stale(result: object) -> bool:
    return isinstance(result, str) and result == STALE_MODELS


async def live_runner_beats(redis: Redis, keys: Keys) -> list[dict[str, Any]]:
    """What each runner with a live heartbeat says about itself (its model, its recent answers): one read of the
    runners set, one MGET of their heartbeats; never a scan. A runner of an older version that beats "1" says {}."""
    runners = sorted(await redis.smembers(keys.workers("runner")))
    if not runners:
        return []
    beats = []
    for value in await redis.mget([keys.heartbeat("runner", runner) for runner in runners]):
        if value is None:
            continue  # expired: that runner is dead, and about to be reaped
        try:
            details = json.loads(value)
        except ValueError:
            details = {}
        beats.append(details if isinstance(details, dict) else {})
    return beats


def runners_per_model(beats: Sequence[dict[str, Any]]) -> dict[str, int]:
    """How many live runners serve each model (runners that name none, of an older version, are left out)."""
    models = Counter(beat["model"] for beat in beats if isinstance(beat.get("model"), str))
    return dict(sorted(models.items()))


def models_seeing_images(beats: Sequence[dict[str, Any]]) -> list[str]:
    """The models a live runner serves that is shown images (its heartbeat says `sees_images`), by name."""
    return sorted({beat["model"] for beat in beats if isinstance(beat.get("model"), str) and beat.get("sees_images")})


class LiveModels:
    """The models live runners serve, read again at most every LIVE_MODELS_CACHE_S for routing messages (a runner
    that stopped a moment ago may still be routed to: its jobs wait, and their users are told)."""

    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        cache_s: float = LIVE_MODELS_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._redis = redis
        self._keys = keys
        self._cache_s = cache_s
        self._clock = clock
        self._read_at = -float("inf")
        self._runners: dict[str, int] = {}
        self.seeing: list[str] = []
        """The models among them that are shown images, as last read."""

    async def cached(self) -> dict[str, int]:
        if self._clock() - self._read_at > self._cache_s:
            await self.fresh()
        return self._runners

    async def fresh(self) -> dict[str, int]:
        """Read now: for commands that show or check them."""
        beats = await live_runner_beats(self._redis, self._keys)
        self._runners, self.seeing = runners_per_model(beats), models_seeing_images(beats)
        self._read_at = self._clock()
        return self._runners
