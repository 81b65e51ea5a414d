"""A fake Discord (REST API and gateway) for tests that run the real discord.py client against it."""

from tests.fake_discord.plugin import discord_py_pointed_at, fake_discord, fake_discord_in_process
from tests.fake_discord.server import FakeDiscord

__all__ = ["FakeDiscord", "discord_py_pointed_at", "fake_discord", "fake_discord_in_process"]
