"""`python -m updater`: a REST-only Discord client that posts the answers waiting in Redis."""

from __future__ import annotations

import asyncio
import logging
import sys

import discord
import discord.http

from shared.config.settings import Settings
from shared.runtime.discord_connect import log_discord_failures_in_one_line, log_in
from shared.runtime.observability.checks import redis_reachable, task_running
from shared.runtime.observability.discord_requests import request_counter
from shared.runtime.observability.metrics import registry_for
from shared.runtime.observability.server import Health, serving
from shared.runtime.process import run_process
from shared.storage.client import create_redis, wait_for_redis
from shared.storage.heartbeat import new_worker_id
from updater.loop import Updater

log = logging.getLogger("updater")


async def main(settings: Settings, stop: asyncio.Event) -> None:
    if settings.discord_api_base:
        # discord.py has no option for another API base; tests point it at a fake Discord.
        discord.http.Route.BASE = settings.discord_api_base
    log_discord_failures_in_one_line()
    redis = create_redis(settings)
    health = Health()
    health.add("Redis", redis_reachable(redis))
    serving_task: asyncio.Task[None] | None = None
    updater: Updater | None = None

    async def loop_alive() -> str | None:
        return task_running(serving_task, "the posting loop") or (updater.heartbeat.staleness() if updater else None)

    health.add("loop", loop_alive)
    # No gateway: login() only checks the token, and discord.py's HTTP client handles rate limits.
    async with (
        serving(registry_for("updater"), health, settings.metrics_port),
        discord.Client(intents=discord.Intents.none(), http_trace=request_counter("updater")) as client,
    ):
        try:
            if not (
                await log_in(client, settings.discord_token.reveal(), stop)
                and await wait_for_redis(redis, settings, stop)
            ):
                return
            worker_id = new_worker_id(settings.worker_id)
            log.info("updater %s posting as %s", worker_id, client.user)
            updater = Updater(settings, client, redis, worker_id)
            serving_task = asyncio.create_task(updater.run(stop))
            await serving_task
        finally:
            await redis.aclose()


if __name__ == "__main__":
    sys.exit(run_process("updater", main, require=["DISCORD_TOKEN"]))
