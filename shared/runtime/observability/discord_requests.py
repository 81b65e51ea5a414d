"""Counts every HTTP request discord.py makes to Discord's REST API (retries of 429s and 5xx included), through
aiohttp's request tracing, which discord.py takes as `http_trace`: its rate-limit handling stays its own."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Literal

import aiohttp

from shared.runtime.observability.metrics import DISCORD_REQUESTS

DiscordProcess = Literal["bot", "updater"]


def request_counter(process: DiscordProcess) -> aiohttp.TraceConfig:
    """A trace config counting requests by status into llamabot_discord_requests_total; the gateway's websocket
    upgrade (101) is not a REST request and is left out."""
    trace = aiohttp.TraceConfig()

    async def ended(
        _session: aiohttp.ClientSession, _context: SimpleNamespace, params: aiohttp.TraceRequestEndParams
    ) -> None:
        if params.response.status != 101:
            DISCORD_REQUESTS.labels(process, str(params.response.status)).inc()

    async def failed(
        _session: aiohttp.ClientSession, _context: SimpleNamespace, _params: aiohttp.TraceRequestExceptionParams
    ) -> None:
        DISCORD_REQUESTS.labels(process, "error").inc()

    trace.on_request_end.append(ended)
    trace.on_request_exception.append(failed)
    return trace
