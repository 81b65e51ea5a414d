"""`python -m bot`: connect to the Discord gateway and queue the messages addressed to the bot."""

from __future__ import annotations

import asyncio
import logging
import sys

import discord
import discord.gateway
import discord.http
import yarl

from bot.client import LlamaBot, create_bot
from shared.config.settings import Settings
from shared.errors import FatalStartupError
from shared.runtime.discord_connect import log_discord_failures_in_one_line, log_in, wait_for_gateway
from shared.runtime.observability.checks import redis_reachable
from shared.runtime.observability.metrics import registry_for
from shared.runtime.observability.server import Health, serving
from shared.runtime.process import run_process

log = logging.getLogger("bot")


def point_discord_py_at(settings: Settings) -> None:
    """Redirects discord.py to another Discord (a test fake or a proxy); discord.py has no option for it."""
    if settings.discord_api_base:
        discord.http.Route.BASE = settings.discord_api_base
    if settings.discord_gateway_url:
        discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(settings.discord_gateway_url)


async def main(settings: Settings, stop: asyncio.Event) -> None:
    point_discord_py_at(settings)
    log_discord_failures_in_one_line()
    health = Health()
    async with create_bot(settings) as client, serving(registry_for("bot"), health, settings.metrics_port):
        health.add("Redis", redis_reachable(client.redis))
        health.add("gateway", client.gateway_problem)
        started = asyncio.create_task(_start(client, settings.discord_token.reveal(), stop))
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({started, stopping}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if started.done():
            _raise_startup_error(started)
        await client.close()
        await asyncio.gather(started, return_exceptions=True)
        log.info("stopped: accepted %d messages this run", client.accepted)


async def _start(client: LlamaBot, token: str, stop: asyncio.Event) -> None:
    """Logs in and connects to the gateway, waiting for Discord while it is unreachable, until `stop` is set."""
    if await log_in(client, token, stop) and await wait_for_gateway(client, stop):
        await client.connect()


def _raise_startup_error(started: asyncio.Task[None]) -> None:
    exc = started.exception()
    if isinstance(exc, discord.PrivilegedIntentsRequired):
        raise FatalStartupError(
            "the Message Content intent is off: enable it for the bot in the Discord developer portal"
        ) from None
    if exc is not None:
        raise exc


if __name__ == "__main__":
    sys.exit(run_process("bot", main, require=["DISCORD_TOKEN"]))
