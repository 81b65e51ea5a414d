"""Pytest fixtures for the fake Discord: a started server per test, and discord.py pointed at it in-process."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import discord.gateway
import discord.http
import pytest
import yarl

from tests.fake_discord.server import FakeDiscord


@contextmanager
def discord_py_pointed_at(fake: FakeDiscord) -> Iterator[None]:
    """Sends this process's discord.py REST calls and gateway connections to `fake`, restoring both after.

    The subprocess equivalent is what the DISCORD_API_BASE and DISCORD_GATEWAY_URL settings do.
    """
    websocket = discord.gateway.DiscordWebSocket
    original_base, original_gateway = discord.http.Route.BASE, websocket.DEFAULT_GATEWAY
    discord.http.Route.BASE = fake.api_base
    # A yarl.URL, not a str: discord.py calls .with_query() on it.
    websocket.DEFAULT_GATEWAY = yarl.URL(fake.gateway_url)
    try:
        yield
    finally:
        discord.http.Route.BASE = original_base
        websocket.DEFAULT_GATEWAY = original_gateway


@pytest.fixture
async def fake_discord() -> AsyncIterator[FakeDiscord]:
    fake = FakeDiscord()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()


@pytest.fixture
def fake_discord_in_process(fake_discord: FakeDiscord) -> Iterator[FakeDiscord]:
    """The started fake, with this process's discord.py pointed at it for the test's duration."""
    with discord_py_pointed_at(fake_discord):
        yield fake_discord
