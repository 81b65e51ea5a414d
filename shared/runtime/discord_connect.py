"""Reaching Discord at start: log in, and find the gateway, retrying with backoff while Discord is unreachable."""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Coroutine
from typing import Any

import aiohttp
import discord
import discord.gateway
import discord.http
from discord.utils import MISSING

from shared.errors import RejectedTokenError
from shared.storage.client import Backoff

RETRY_BASE_S = 0.5
"""The first retry waits up to twice this long (full jitter), each further one up to twice as long as the last."""

RETRY_CAP_S = 60.0
"""The longest wait between two attempts to reach Discord."""

DISCORD_DOWN_ERRORS = (aiohttp.ClientConnectionError, OSError, asyncio.TimeoutError, discord.DiscordServerError)
"""What a REST call raises while Discord is unreachable or failing (5xx after discord.py's own retries)."""

GATEWAY_DOWN_ERRORS = (*DISCORD_DOWN_ERRORS, aiohttp.WSServerHandshakeError, discord.ConnectionClosed)
"""What connecting to the gateway raises while it is unreachable, refuses the upgrade or drops the socket."""

log = logging.getLogger(__name__)


def describe(exc: BaseException) -> str:
    """A few words on why Discord could not be reached, to go on one line in place of a traceback."""
    if isinstance(exc, aiohttp.ClientConnectorError):
        if isinstance(exc.os_error, socket.gaierror):
            return f"cannot resolve {exc.host}"
        exc = exc.os_error
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, asyncio.TimeoutError):
        return "timed out"
    if isinstance(exc, discord.HTTPException | aiohttp.WSServerHandshakeError):
        return f"HTTP {exc.status}"
    if isinstance(exc, discord.ConnectionClosed):
        return f"closed with code {exc.code}"
    return " ".join(str(exc).split()) or type(exc).__name__


async def log_in(client: discord.Client, token: str, stop: asyncio.Event) -> bool:
    """Logs `client` in, retrying while Discord is unreachable; False if `stop` was set first.

    Raises RejectedTokenError when Discord refuses the token.
    """
    return await _until_stopped(_log_in_with_retries(client, token), stop)


async def wait_for_gateway(client: discord.Client, stop: asyncio.Event) -> bool:
    """Waits until the gateway accepts a websocket (closed at once); False if `stop` was set first.

    discord.py 2.7 retries a gateway that drops, but a first connection that fails crashes its reconnect loop
    (it reads the session of a websocket it never had), so the bot calls this between login and connect.
    """
    return await _until_stopped(_probe_gateway_with_retries(client), stop)


async def _log_in_with_retries(client: discord.Client, token: str) -> None:
    backoff = Backoff(RETRY_BASE_S, RETRY_CAP_S)
    while True:
        try:
            await client.login(token)
            return
        except discord.LoginFailure:
            raise RejectedTokenError("Discord rejected DISCORD_TOKEN (check the bot token in .env)") from None
        except DISCORD_DOWN_ERRORS as exc:
            delay = backoff.next_delay()
            log.warning(
                "Discord unreachable at %s (%s); retrying in %.1f s", discord.http.Route.BASE, describe(exc), delay
            )
        # Each login() opens a new HTTP session and leaves the last one open: close it, and with it its
        # connector, which the next login() then replaces.
        await client.http.close()
        client.http.connector = MISSING
        await asyncio.sleep(delay)


async def _probe_gateway_with_retries(client: discord.Client) -> None:
    gateway = discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY
    url = gateway.with_query(v=discord.http.INTERNAL_API_VERSION, encoding="json")
    backoff = Backoff(RETRY_BASE_S, RETRY_CAP_S)
    while True:
        try:
            websocket = await client.http.ws_connect(str(url))
        except GATEWAY_DOWN_ERRORS as exc:
            delay = backoff.next_delay()
            log.warning("Discord gateway unreachable at %s (%s); retrying in %.1f s", gateway, describe(exc), delay)
            await asyncio.sleep(delay)
            continue
        await websocket.close()
        return


async def _until_stopped(work: Coroutine[Any, Any, None], stop: asyncio.Event) -> bool:
    """Runs `work` to its end (True, or its exception) unless `stop` is set first (False, `work` cancelled)."""
    working = asyncio.create_task(work)
    stopping = asyncio.create_task(stop.wait())
    try:
        await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (working, stopping):
            task.cancel()
        await asyncio.gather(working, stopping, return_exceptions=True)
    if working.cancelled():
        return False
    working.result()
    return True


class OneLineDiscordLogs(logging.Filter):
    """Puts on one line what discord.py logs with a traceback when the gateway is unreachable (each reconnect)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.msg == "logging in using static token":
            return False  # one line per attempt to log in: ours, when it fails
        exc = record.exc_info[1] if record.exc_info else None
        if isinstance(exc, GATEWAY_DOWN_ERRORS):
            record.msg = f"{record.getMessage()} (gateway: {describe(exc)})"
            record.args = None
            record.exc_info = None
        return True


_ONE_LINE = OneLineDiscordLogs()


def log_discord_failures_in_one_line() -> None:
    """Filters the loggers of discord.py's client and shards through OneLineDiscordLogs (once per process)."""
    for name in ("discord.client", "discord.shard"):
        logging.getLogger(name).addFilter(_ONE_LINE)
