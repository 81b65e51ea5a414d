"""Where a message was written: a thread's parent comes from discord.py's cache, or is asked over REST once for a
thread discord.py has not seen (opened before a restart), so that it follows its channel's persona and access."""

from __future__ import annotations

from unittest.mock import Mock

import discord

from bot.places import Places
from shared.stores.places import Place


async def test_a_thread_discord_py_has_not_seen_is_looked_up_once_and_its_parent_remembered() -> None:
    asked: list[int] = []

    async def fetch_channel(channel_id: int) -> object:
        asked.append(channel_id)
        return Mock(spec=discord.Thread, id=channel_id, parent_id=11)

    places = Places(fetch_channel)
    unseen = Mock(spec=discord.PartialMessageable, id=13, guild_id=800)
    assert await places.at(None, unseen) == Place("800", "13", "11")
    assert await places.at(None, unseen) == Place("800", "13", "11")
    assert asked == [13], "a thread never changes its parent: asked once"


async def test_a_channel_a_dm_and_a_known_thread_need_no_request() -> None:
    async def fetch_channel(channel_id: int) -> object:
        raise AssertionError("no request expected")

    places = Places(fetch_channel)
    guild = Mock(spec=discord.Guild, id=800)
    guild.name = "Llama Club"
    thread = Mock(spec=discord.Thread, id=13, parent_id=11)
    assert await places.at(guild, thread) == Place("800", "13", "11", "Llama Club")
    assert await places.at(guild, Mock(spec=discord.TextChannel, id=11)) == Place("800", "11", None, "Llama Club")
    assert await places.at(None, Mock(spec=discord.DMChannel, id=77)) == Place(None, "77")


async def test_a_channel_that_cannot_be_looked_up_is_taken_as_a_channel_of_its_own() -> None:
    async def fetch_channel(channel_id: int) -> object:
        raise discord.NotFound(Mock(status=404, reason="Not Found"), {"code": 10003, "message": "Unknown Channel"})

    places = Places(fetch_channel)
    unseen = Mock(spec=discord.PartialMessageable, id=13, guild_id=800)
    assert await places.at(None, unseen) == Place("800", "13")
