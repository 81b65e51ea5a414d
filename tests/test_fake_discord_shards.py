"""Several guilds and gateway shards on the fake Discord, against discord.py's AutoShardedClient."""

from __future__ import annotations

import asyncio

import discord
import pytest

from tests.fake_discord import FakeDiscord
from tests.fake_discord.recording import EVENT_TIMEOUT_SECONDS, RecordingClient, ShardRecordingClient, running


@pytest.fixture
def fake(fake_discord_in_process: FakeDiscord) -> FakeDiscord:
    return fake_discord_in_process


def shard_of(guild_id: str, shard_count: int) -> int:
    return (int(guild_id) >> 22) % shard_count


def test_guilds_land_on_the_shard_asked_for(fake_discord: FakeDiscord) -> None:
    ids = [fake_discord.add_guild(f"guild {n}", shard=n % 3, shard_count=3) for n in range(6)]

    assert [shard_of(guild_id, 3) for guild_id in ids] == [0, 1, 2, 0, 1, 2]
    assert [int(guild_id) for guild_id in ids] == sorted(int(guild_id) for guild_id in ids)
    assert fake_discord.guild_ids == [fake_discord.guild_id, *ids]
    assert len({fake_discord.guild_channel(guild_id) for guild_id in ids}) == 6


async def test_each_shard_sees_only_its_guilds_and_dms_go_to_shard_0(fake: FakeDiscord) -> None:
    on_0, on_1 = fake.add_guild("zero", shard=0), fake.add_guild("one", shard=1)
    alice = fake.add_user("alice")
    shard_0, shard_1 = ShardRecordingClient([0], 2), ShardRecordingClient([1], 2)

    async with running(fake, shard_0), running(fake, shard_1):
        for guild_id in (on_0, on_1):
            await fake.send_message(alice, f"in {guild_id}", channel_id=fake.guild_channel(guild_id))
        await fake.send_message(alice, "a dm", dm=True)
        got_0 = [(await shard_0.next_message()).content for _ in range(2)]
        got_1 = await shard_1.next_message()
        await asyncio.sleep(0.1)  # anything misrouted would have arrived by now
        assert shard_0.inbox.empty() and shard_1.inbox.empty()
        guilds_0, guilds_1 = {g.id for g in shard_0.guilds}, {g.id for g in shard_1.guilds}

    assert got_0 == [f"in {on_0}", "a dm"] and got_1.content == f"in {on_1}"
    assert got_1.guild is not None and got_1.guild.id == int(on_1) and got_1.author.id == int(alice["id"])
    everything = {int(guild_id) for guild_id in fake.guild_ids}
    assert guilds_0 == {g for g in everything if shard_of(str(g), 2) == 0}
    assert guilds_1 == everything - guilds_0 and int(on_1) in guilds_1


async def test_a_plain_client_sees_every_guild_and_channel(fake: FakeDiscord) -> None:
    second = fake.add_guild("second")
    extra = fake.add_text_channel("extra", second)
    alice = fake.add_user("alice")
    client = RecordingClient()

    async with running(fake, client):
        sent = await fake.send_message(alice, "hi", channel_id=extra)
        message = await client.next_message()

    assert {g.id for g in client.guilds} == {int(fake.guild_id), int(second)}
    assert isinstance(message.channel, discord.TextChannel) and message.channel.name == "extra"
    assert message.guild is not None and message.guild.id == int(second) == int(sent["guild_id"])
    assert isinstance(message.author, discord.Member)


async def test_interactions_go_to_the_shard_of_their_guild(fake: FakeDiscord) -> None:
    on_1 = fake.add_guild("one", shard=1)
    alice = fake.add_user("alice")
    shard_0, shard_1 = ShardRecordingClient([0], 2), ShardRecordingClient([1], 2)

    async with running(fake, shard_0), running(fake, shard_1):
        ping = {"name": "ping", "description": "Are you there?", "type": 1}
        await shard_0.http.bulk_upsert_global_commands(fake.bot_user["id"], [ping])
        await fake.invoke_command(alice, "ping", channel_id=fake.guild_channel(on_1))
        await fake.invoke_command(alice, "ping", dm=True)
        in_guild, in_dm = await shard_1.next_interaction(), await shard_0.next_interaction()
        await asyncio.sleep(0.1)  # anything misrouted would have arrived by now
        assert shard_0.interactions.empty() and shard_1.interactions.empty()

    assert in_guild.guild_id == int(on_1) and in_guild.command is None  # no CommandTree: on_interaction only
    assert in_dm.guild_id is None and in_dm.user.id == int(alice["id"])


class NoPauseShardedClient(ShardRecordingClient):
    """Identifies every shard at once: discord.py otherwise waits 5 s before each IDENTIFY but the first."""

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        return None


async def test_gateway_bot_recommends_the_configured_shard_count(fake: FakeDiscord) -> None:
    fake.recommended_shards = 2
    client = NoPauseShardedClient()  # without a shard count, discord.py asks GET /gateway/bot

    async with running(fake, client):
        await fake.wait_identified(count=2, timeout=EVENT_TIMEOUT_SECONDS)
        shard_count, shards = client.shard_count, sorted(client.shards)

    assert (shard_count, shards) == (2, [0, 1])
    assert ("GET", "/gateway/bot", 200) in fake.requests
