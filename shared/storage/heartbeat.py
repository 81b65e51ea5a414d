"""Worker liveness: a heartbeat key with a TTL, and finding the workers whose heartbeat expired."""

from __future__ import annotations

import json
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Literal

from redis.asyncio import Redis

from shared.storage.client import REDIS_DOWN_ERRORS
from shared.storage.keys import Keys

Role = Literal["runner", "updater"]


def new_worker_id(configured: str = "") -> str:
    """A unique id: the configured one, else host-pid-random (containers share pids, hosts differ)."""
    return configured or f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Heartbeat:
    def __init__(
        self,
        redis: Redis,
        keys: Keys,
        role: Role,
        worker_id: str,
        ttl_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        details: Callable[[], Mapping[str, object]] | None = None,
        registers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self._redis = redis
        self._keys = keys
        self.role = role
        self.worker_id = worker_id
        self.ttl_s = ttl_s
        self._clock = clock
        self._details = details
        """What the heartbeat's value tells the others about this worker (e.g. a runner's model, recent answers)."""
        self._registers = tuple(registers)
        """(set, member) pairs added at every beat besides the workers set, e.g. a runner's model to the models set
        (so that a set lost with Redis's data is whole again a beat later)."""
        self.last_beat_at: float | None = None
        """When (on `clock`) the last beat reached Redis: what the health check calls fresh or stale."""
        self._unreachable = False
        self._reap_from = 0.0
        """No reaping before then: set to one TTL after Redis comes back from an outage this worker saw."""

    @property
    def interval_s(self) -> float:
        """Three beats per TTL, so one late beat does not make a worker look dead."""
        return self.ttl_s / 3

    async def beat(self) -> None:
        async with self._redis.pipeline(transaction=True) as pipe:
            value = json.dumps(self._details()) if self._details else "1"
            pipe.set(self._keys.heartbeat(self.role, self.worker_id), value, px=int(self.ttl_s * 1000))
            pipe.sadd(self._keys.workers(self.role), self.worker_id)
            for set_key, member in self._registers:
                pipe.sadd(set_key, member)
            await pipe.execute()
        self.last_beat_at = self._clock()

    def staleness(self) -> str | None:
        """Why this worker's heartbeat is not fresh (none yet, or older than the TTL), or None when it is."""
        if self.last_beat_at is None:
            return "no heartbeat has reached Redis yet"
        age_s = self._clock() - self.last_beat_at
        return f"last heartbeat {age_s:.0f} s ago (TTL {self.ttl_s:g} s)" if age_s > self.ttl_s else None

    async def silent_peers(self) -> list[str]:
        """Registered workers of this role, other than this one, whose heartbeat key is gone."""
        peers = [p for p in await self._redis.smembers(self._keys.workers(self.role)) if p != self.worker_id]
        if not peers:
            return []
        async with self._redis.pipeline(transaction=False) as pipe:
            for peer in peers:
                pipe.exists(self._keys.heartbeat(self.role, peer))
            alive = await pipe.execute()
        return [peer for peer, is_alive in zip(peers, alive, strict=True) if not is_alive]

    async def beat_and_reap(self, reap_peer: Callable[[str], Awaitable[None]]) -> None:
        """Beats, then hands each silent peer of this role to `reap_peer` (every worker does this; reaping is
        idempotent). Raises the Redis error if Redis is unreachable; the caller logs it and beats again later.

        After an outage every heartbeat may have expired, the live workers' too: reaping then would take the
        jobs out of their hands (each would be redone, one attempt wasted). So once Redis is back, this worker
        waits one TTL, in which every live peer beats again, before it reaps anyone.
        """
        try:
            await self.beat()
            if self._unreachable:
                self._unreachable = False
                self._reap_from = self._clock() + self.ttl_s
            if self._clock() < self._reap_from:
                return
            for peer in await self.silent_peers():
                await reap_peer(peer)
        except REDIS_DOWN_ERRORS:
            self._unreachable = True
            raise
