"""Threads on the fake Discord against the real discord.py client: opened by the bot or a user, and talked in."""

from __future__ import annotations

from collections.abc import AsyncIterator

import discord
import pytest

from tests.fake_discord import FakeDiscord
from tests.fake_discord.faults import ApiError
from tests.fake_discord.recording import RecordingClient, running


@pytest.fixture
def fake(fake_discord_in_process: FakeDiscord) -> FakeDiscord:
    return fake_discord_in_process


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[RecordingClient]:
    client = RecordingClient()
    async with running(fake, client):
        yield client


async def test_the_bot_opens_a_thread_from_a_message(client: RecordingClient, fake: FakeDiscord) -> None:
    alice = fake.add_user("alice")
    await fake.send_message(alice, "let's talk about it")
    question = await client.next_message()

    thread = await question.create_thread(name="about it")
    announced = await client.next_thread()

    assert isinstance(thread, discord.Thread)
    assert thread.id == question.id == announced.id  # Discord gives the thread its starter message's id
    assert (thread.parent_id, thread.owner_id) == (int(fake.channel_id), client.user and client.user.id)
    assert thread.type is discord.ChannelType.public_thread
    assert thread.me is not None and thread.archived is False and thread.auto_archive_duration == 1440
    assert announced.owner_id == thread.owner_id and announced.guild.get_thread(thread.id) is announced
    stored = fake.thread(str(thread.id))
    assert stored["thread_metadata"]["archived"] is False and stored["member_count"] == 1
    assert fake.message(str(question.id))["thread"]["id"] == str(thread.id)
    assert [t["id"] for t in fake.threads] == [str(thread.id)]


async def test_messages_in_a_thread_reach_the_bot_in_that_thread(client: RecordingClient, fake: FakeDiscord) -> None:
    alice = fake.add_user("alice")
    starter = await fake.send_message(alice, "start")
    await client.next_message()
    thread = await client.text_channel(fake.channel_id).get_partial_message(int(starter["id"])).create_thread(name="t")
    await client.next_thread()

    await thread.send("the bot in the thread")
    sent = await fake.send_message(alice, "alice in the thread", channel_id=str(thread.id))
    message = await client.next_message()

    assert [post["channel_id"] for post in fake.posted] == [str(thread.id)]
    assert isinstance(message.channel, discord.Thread) and message.channel.id == thread.id
    assert message.guild is not None and message.guild.id == int(fake.guild_id)
    assert (sent["guild_id"], "member" in sent) == (fake.guild_id, True)
    stored = fake.thread(str(thread.id))
    assert (stored["message_count"], stored["total_message_sent"], stored["member_count"]) == (2, 2, 2)
    assert stored["last_message_id"] == sent["id"]


async def test_a_users_thread_is_known_to_a_client_that_identifies_later(fake: FakeDiscord) -> None:
    alice = fake.add_user("alice")
    first = RecordingClient()
    async with running(fake, first):
        thread_id = await fake.create_thread(alice, "alice's thread")
        announced = await first.next_thread()
        assert announced.owner_id == int(alice["id"]) and announced.parent_id == int(fake.channel_id)

    later = RecordingClient()
    async with running(fake, later):
        guild = later.get_guild(int(fake.guild_id))
        known = guild and guild.get_thread(int(thread_id))
        await fake.send_message(alice, "anyone here?", channel_id=thread_id)
        message = await later.next_message()

    assert isinstance(known, discord.Thread) and known.owner_id == int(alice["id"])
    assert isinstance(message.channel, discord.Thread) and message.channel.owner_id == int(alice["id"])
    assert fake.thread(thread_id)["owner_id"] == alice["id"]


async def test_thread_names_and_second_threads_are_refused_like_discord(
    client: RecordingClient, fake: FakeDiscord
) -> None:
    alice = fake.add_user("alice")
    starter = await fake.send_message(alice, "start")
    message = client.text_channel(fake.channel_id).get_partial_message(int(starter["id"]))

    with pytest.raises(discord.HTTPException) as too_long:
        await message.create_thread(name="x" * 101)
    with pytest.raises(discord.HTTPException) as empty:
        await message.create_thread(name="")
    await message.create_thread(name="x" * 100)
    with pytest.raises(discord.HTTPException) as second:
        await message.create_thread(name="again")
    with pytest.raises(ApiError, match="160004"):
        await fake.create_thread(alice, "mine too", from_message=starter["id"])

    assert (too_long.value.status, too_long.value.code) == (400, 50035)
    assert "name" in too_long.value.text and empty.value.code == 50035
    assert (second.value.status, second.value.code) == (400, 160004)
    assert len(fake.threads) == 1


async def test_a_thread_without_a_starter_message(client: RecordingClient, fake: FakeDiscord) -> None:
    thread = await client.text_channel(fake.channel_id).create_thread(
        name="standalone", type=discord.ChannelType.public_thread, auto_archive_duration=60
    )

    assert (thread.type, thread.auto_archive_duration) == (discord.ChannelType.public_thread, 60)
    assert (await client.next_thread()).id == thread.id
    assert fake.thread(str(thread.id))["parent_id"] == fake.channel_id
    fetched = await client.fetch_channel(thread.id)
    assert isinstance(fetched, discord.Thread) and fetched.name == "standalone"
