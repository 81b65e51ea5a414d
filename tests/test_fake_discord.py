"""The fake Discord against the real discord.py client, in-process: login, events, sends, faults and reconnects."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest
from discord.http import Route

from tests.fake_discord import FakeDiscord
from tests.fake_discord.recording import EVENT_TIMEOUT_SECONDS, RecordingClient, chat_intents, start_client


@pytest.fixture
async def client(fake_discord_in_process: FakeDiscord) -> AsyncIterator[RecordingClient]:
    client = RecordingClient()
    running = await start_client(fake_discord_in_process, client)
    try:
        yield client
    finally:
        await client.close()
        await asyncio.wait_for(running, EVENT_TIMEOUT_SECONDS)


@pytest.fixture
def fake(fake_discord_in_process: FakeDiscord) -> FakeDiscord:
    return fake_discord_in_process


async def test_login_identifies_and_fires_on_ready(client: RecordingClient, fake: FakeDiscord) -> None:
    await fake.wait_identified(timeout=1)
    assert client.user is not None and client.user.id == int(fake.bot_user["id"])
    guild = client.get_guild(int(fake.guild_id))
    assert guild is not None and guild.me is not None
    channel = client.text_channel(fake.channel_id)
    assert channel.permissions_for(guild.me).send_messages
    assert ("GET", "/users/@me", 200) in fake.requests
    assert ("GET", "/oauth2/applications/@me", 200) in fake.requests
    assert (fake.identify_count, fake.resume_count) == (1, 0)


async def test_user_message_arrives_in_the_guild_channel(client: RecordingClient, fake: FakeDiscord) -> None:
    alice = fake.add_user("alice")
    sent = await fake.send_message(alice, "hello bot")

    message = await client.next_message()
    assert (message.id, message.content) == (int(sent["id"]), "hello bot")
    assert (message.author.id, message.author.name, message.author.bot) == (int(alice["id"]), "alice", False)
    assert isinstance(message.channel, discord.TextChannel)
    assert message.channel.id == int(fake.channel_id)
    assert message.guild is not None and message.guild.id == int(fake.guild_id)
    assert message.type is discord.MessageType.default
    assert message.mentions == []


async def test_dm_arrives_in_a_dm_channel(client: RecordingClient, fake: FakeDiscord) -> None:
    bob = fake.add_user("bob")
    sent = await fake.send_message(bob, "psst", dm=True)

    message = await client.next_message()
    assert isinstance(message.channel, discord.DMChannel)
    assert message.guild is None and "guild_id" not in sent
    assert message.channel.id == int(sent["channel_id"]) != int(fake.channel_id)
    assert (message.author.id, message.content) == (int(bob["id"]), "psst")
    await message.channel.send("hi back")
    assert [post["channel_id"] for post in await fake.wait_for_posts(1)] == [sent["channel_id"]]


async def test_bot_reply_records_the_body_and_a_user_reply_mentions_the_bot(
    client: RecordingClient, fake: FakeDiscord
) -> None:
    alice = fake.add_user("alice")
    await fake.send_message(alice, "question", mention_bot=True)
    question = await client.next_message()
    assert client.user in question.mentions

    answer = await question.channel.send(
        "answer",
        reference=question.to_reference(fail_if_not_exists=False),
        allowed_mentions=discord.AllowedMentions.none(),
        nonce="x",
    )
    [post] = await fake.wait_for_posts(1, timeout=1)
    request = post["_request"]
    assert request["content"] == "answer"
    assert int(request["message_reference"]["message_id"]) == question.id  # discord.py sends ids as ints
    assert request["message_reference"]["fail_if_not_exists"] is False
    assert request["allowed_mentions"] == {"parse": []}  # discord.py leaves out replied_user when it is False
    assert (request["nonce"], request["enforce_nonce"]) == ("x", True)
    assert (post["id"], post["type"], post["mentions"]) == (str(answer.id), 19, [])
    echo = await asyncio.wait_for(client.own_echoes.get(), EVENT_TIMEOUT_SECONDS)
    assert echo.id == answer.id and echo.reference is not None

    await fake.send_message(alice, "thanks", reply_to=post["id"])
    reply = await client.next_message()
    assert reply.type is discord.MessageType.reply
    assert reply.reference is not None and reply.reference.message_id == answer.id
    assert isinstance(reply.reference.resolved, discord.Message)
    assert reply.reference.resolved.author.id == client.user.id
    assert client.user in reply.mentions


async def test_a_repeated_nonce_creates_one_message(client: RecordingClient, fake: FakeDiscord) -> None:
    channel = client.text_channel(fake.channel_id)
    first = await channel.send("once", nonce="same")
    second = await channel.send("once", nonce="same")

    assert first.id == second.id
    assert len(fake.posted) == 1
    assert [status for method, path, status in fake.requests if method == "POST"] == [200, 200]


async def test_an_injected_429_is_retried_and_posts_once(client: RecordingClient, fake: FakeDiscord) -> None:
    fake.fail_next("POST", r"/channels/\d+/messages", 429, retry_after=0.1)

    await client.text_channel(fake.channel_id).send("after the rate limit")

    assert [post["content"] for post in fake.posted] == ["after the rate limit"]
    assert [status for method, path, status in fake.requests if method == "POST"] == [429, 200]


async def test_an_injected_403_raises_forbidden(client: RecordingClient, fake: FakeDiscord) -> None:
    fake.fail_next("POST", r"/channels/\d+/messages", 403)
    channel = client.text_channel(fake.channel_id)

    with pytest.raises(discord.Forbidden) as raised:
        await channel.send("nope")
    assert raised.value.code == 50013
    assert fake.posted == []
    await channel.send("the fault was used up")
    assert len(fake.posted) == 1


async def test_invalid_messages_are_refused_like_discord(client: RecordingClient, fake: FakeDiscord) -> None:
    channel = client.text_channel(fake.channel_id)

    with pytest.raises(discord.HTTPException) as too_long:
        await channel.send("x" * 2001)
    with pytest.raises(discord.HTTPException) as empty:
        await channel.send("  \n ")
    with pytest.raises(discord.NotFound) as unknown:
        await client.get_partial_messageable(1234).send("where?")

    assert (too_long.value.status, too_long.value.code) == (400, 50035)
    assert (empty.value.status, empty.value.code) == (400, 50006)
    assert unknown.value.code == 10003
    assert fake.posted == []


async def test_a_gateway_disconnect_resumes_and_replays(client: RecordingClient, fake: FakeDiscord) -> None:
    alice = fake.add_user("alice")

    await fake.disconnect_gateway()
    missed = await fake.send_message(alice, "sent while disconnected")
    await fake.wait_resumed(timeout=EVENT_TIMEOUT_SECONDS)
    await asyncio.wait_for(client.resumed.wait(), EVENT_TIMEOUT_SECONDS)
    after = await fake.send_message(alice, "sent after the resume")

    assert [(await client.next_message()).id for _ in range(2)] == [int(missed["id"]), int(after["id"])]
    assert (fake.identify_count, fake.resume_count) == (1, 1)


async def test_user_edits_and_deletes_are_dispatched(client: RecordingClient, fake: FakeDiscord) -> None:
    alice = fake.add_user("alice")
    sent = await fake.send_message(alice, "typo")
    await client.next_message()

    await fake.edit_message(sent["id"], "fixed")
    edit = await asyncio.wait_for(client.raw_edits.get(), EVENT_TIMEOUT_SECONDS)
    await fake.delete_message(sent["id"])
    delete = await asyncio.wait_for(client.raw_deletes.get(), EVENT_TIMEOUT_SECONDS)

    assert (edit.message_id, edit.message.content) == (int(sent["id"]), "fixed")
    assert (delete.message_id, delete.channel_id) == (int(sent["id"]), int(fake.channel_id))


async def test_bot_edits_reacts_types_uploads_and_deletes(client: RecordingClient, fake: FakeDiscord) -> None:
    channel = client.text_channel(fake.channel_id)
    draft = await channel.send("draft")
    await draft.edit(content="final")
    await draft.add_reaction("👍")
    async with channel.typing():
        upload = await channel.send(file=discord.File(io.BytesIO(b"file body"), "notes.txt"))
    await draft.delete()

    [edit] = fake.edits
    assert (edit["content"], edit["message_id"], edit["channel_id"]) == ("final", str(draft.id), fake.channel_id)
    assert fake.reactions == [(fake.channel_id, str(draft.id), "👍")]
    assert fake.typing == [fake.channel_id]
    assert await upload.attachments[0].read() == b"file body"
    assert ("DELETE", f"/channels/{fake.channel_id}/messages/{draft.id}", 204) in fake.requests
    with pytest.raises(discord.NotFound):
        await channel.fetch_message(draft.id)


async def test_without_the_content_intent_only_mentions_keep_content(fake: FakeDiscord) -> None:
    client = RecordingClient(message_content=False)
    running = await start_client(fake, client)
    try:
        alice = fake.add_user("alice")
        await fake.send_message(alice, "not for you")
        await fake.send_message(alice, "for you", mention_bot=True)
        assert [(await client.next_message()).content for _ in range(2)] == ["", "for you"]
    finally:
        await client.close()
        await asyncio.wait_for(running, EVENT_TIMEOUT_SECONDS)


async def test_a_rest_only_client_can_send(fake: FakeDiscord) -> None:
    client = discord.Client(intents=chat_intents())
    try:
        await client.login(fake.token)
        sent = await client.get_partial_messageable(int(fake.channel_id)).send("from the updater")
        channel = await client.fetch_channel(int(fake.channel_id))
    finally:
        await client.close()

    assert [(post["id"], post["content"]) for post in fake.posted] == [(str(sent.id), "from the updater")]
    assert isinstance(channel, discord.TextChannel)
    assert fake.identify_count == 0


async def test_a_bad_token_fails_login(fake: FakeDiscord) -> None:
    client = discord.Client(intents=chat_intents())
    try:
        with pytest.raises(discord.LoginFailure):
            await client.login("not-the-token")
    finally:
        await client.close()

    assert fake.requests == [("GET", "/users/@me", 401)]


async def test_responses_are_plain_json_and_unknown_routes_404(client: RecordingClient, fake: FakeDiscord) -> None:
    with pytest.raises(discord.NotFound):
        await client.http.request(Route("GET", "/no/such/route"))
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as session:
        async with session.get(f"{fake.api_base}/users/@me") as response:
            assert response.headers["Content-Type"] == "application/json"
            assert int(response.headers["X-RateLimit-Remaining"]) > 0
        async with session.post(f"{fake.api_base}/channels/{fake.channel_id}/typing") as response:
            assert response.status == 204 and "Content-Type" not in response.headers

    assert ("GET", "/no/such/route", 404) in fake.requests


async def test_a_fault_after_handling_creates_the_message_and_a_nonce_retry_finds_it(
    client: RecordingClient, fake: FakeDiscord
) -> None:
    fake.fail_next("POST", r"/channels/\d+/messages", 502, after_handling=True)

    sent = await client.text_channel(fake.channel_id).send("once", nonce="n-1")  # discord.py retries the 502

    assert [post["id"] for post in fake.posted] == [str(sent.id)]
    assert [status for method, path, status in fake.requests if method == "POST"] == [502, 200]


async def test_a_held_answer_comes_after_the_message_exists(client: RecordingClient, fake: FakeDiscord) -> None:
    channel = client.text_channel(fake.channel_id)
    hold = fake.hold_next("POST", r"/channels/\d+/messages", skip=1)
    await channel.send("first passes")
    sending = asyncio.create_task(channel.send("second is held"))

    await asyncio.wait_for(hold.arrived.wait(), EVENT_TIMEOUT_SECONDS)
    assert [post["content"] for post in fake.posted] == ["first passes", "second is held"]
    assert not sending.done()
    hold.release()
    assert (await asyncio.wait_for(sending, EVENT_TIMEOUT_SECONDS)).content == "second is held"
