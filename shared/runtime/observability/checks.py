"""Health checks more than one process runs, and the periodic refresh of the queue gauges."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from redis.asyncio import Redis

from shared.runtime.observability.metrics import QUEUE_DEPTH, WORKERS_ALIVE
from shared.runtime.observability.server import HealthCheck
from shared.storage.client import REDIS_DOWN_ERRORS
from shared.stores.queue_inspection import QueueInspection

log = logging.getLogger(__name__)

QUEUE_GAUGES_REFRESH_S = 5.0
"""How often the queue gauges are read from Redis: a few cheap reads, never one per scrape."""


def redis_reachable(redis: Redis) -> HealthCheck:
    async def check() -> str | None:
        try:
            await redis.ping()
        except REDIS_DOWN_ERRORS as exc:
            return f"Redis unreachable ({type(exc).__name__})"
        return None

    return check


def task_running(task: asyncio.Task[None] | None, what: str) -> str | None:
    """Why a process's main loop is not running: not started, or ended (crashed or stopped)."""
    if task is None:
        return f"{what} has not started"
    if task.done():
        return f"{what} has stopped"
    return None


async def refresh_queue_gauges(inspection: QueueInspection, closing: asyncio.Event) -> None:
    """Sets llamabot_queue_depth and llamabot_workers_alive from QueueInspection every QUEUE_GAUGES_REFRESH_S until
    `closing` is set (one bot process does it; a scrape only reads the last values)."""
    while not closing.is_set():
        try:
            stats = await inspection.stats()
        except REDIS_DOWN_ERRORS as exc:
            log.debug("queue gauges not refreshed: Redis unreachable (%s)", type(exc).__name__)
        else:
            for model, length in stats.queue_lengths.items():
                QUEUE_DEPTH.labels(f"query:{model}" if model else "query").set(length)
            QUEUE_DEPTH.labels("processing").set(stats.processing)
            QUEUE_DEPTH.labels("response").set(stats.responses)
            QUEUE_DEPTH.labels("dead").set(stats.dead)
            WORKERS_ALIVE.labels("runner").set(stats.runners)
            WORKERS_ALIVE.labels("updater").set(stats.updaters)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(closing.wait(), QUEUE_GAUGES_REFRESH_S)
