"""`python -m updater`: a REST-only Discord client that posts the answers waiting in Redis."""

from __future__ import annotations

import asyncio
import logging
import sys

import discord
import discord.http

from shared.errors import FatalStartupError
from shared.heartbeat import new_worker_id
from shared.process import run_process
from shared.redis_client import create_redis, wait_for_redis
from shared.settings import Settings
from updater.loop import Updater

log = logging.getLogger("updater")


async def main(settings: Settings, stop: asyncio.Event) -> None:
    if settings.discord_api_base:
        # discord.py has no option for another API base; tests point it at a fake Discord.
        discord.http.Route.BASE = settings.discord_api_base
    redis = create_redis(settings)
    # No gateway: login() only checks the token, and discord.py's HTTP client handles rate limits.
    async with discord.Client(intents=discord.Intents.none()) as client:
        try:
            await client.login(settings.discord_token.reveal())
        except discord.LoginFailure:
            raise FatalStartupError("Discord rejected DISCORD_TOKEN (check the bot token in .env)") from None
        if not await wait_for_redis(redis, settings, stop):
            return
        worker_id = new_worker_id(settings.worker_id)
        log.info("updater %s posting as %s", worker_id, client.user)
        try:
            await Updater(settings, client, redis, worker_id).run(stop)
        finally:
            await redis.aclose()


if __name__ == "__main__":
    sys.exit(run_process("updater", main, require=["DISCORD_TOKEN"]))
