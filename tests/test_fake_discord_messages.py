"""Message bookkeeping on the fake Discord against real discord.py: edit history, deletes, per-channel limits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest

from tests.fake_discord import FakeDiscord
from tests.fake_discord.recording import RecordingClient, running


@pytest.fixture
def fake(fake_discord_in_process: FakeDiscord) -> FakeDiscord:
    return fake_discord_in_process


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[RecordingClient]:
    client = RecordingClient()
    async with running(fake, client):
        yield client


def accepted_write_times(fake: FakeDiscord) -> list[float]:
    """When each send or edit the fake accepted was answered (time.monotonic())."""
    return [
        at
        for (method, path, status), at in zip(fake.requests, fake.request_times, strict=True)
        if method in ("POST", "PATCH") and "/messages" in path and status == 200
    ]


async def test_every_message_keeps_its_content_history(client: RecordingClient, fake: FakeDiscord) -> None:
    channel = client.text_channel(fake.channel_id)
    answer = await channel.send("Th")
    await answer.edit(content="The ans")
    await answer.edit(content="The answer.")
    await answer.delete()
    alice = fake.add_user("alice")
    question = await fake.send_message(alice, "qestion")
    await fake.edit_message(question["id"], "question")

    assert fake.message_history(str(answer.id)) == ["Th", "The ans", "The answer."]
    assert fake.message_history(question["id"]) == ["qestion", "question"]
    assert fake.deleted == [(fake.channel_id, str(answer.id))]
    assert [edit["content"] for edit in fake.edits] == ["The ans", "The answer."]


async def test_the_channel_limit_paces_sends_and_edits(client: RecordingClient, fake: FakeDiscord) -> None:
    fake.limit_channel_messages(count=5, per_s=5.0)
    channel = client.text_channel(fake.channel_id)
    started = time.monotonic()

    for part in range(4):
        message = await channel.send(f"part {part}")
        await message.edit(content=f"part {part}, longer")
        await message.edit(content=f"part {part}, done")

    times = accepted_write_times(fake)
    assert len(times) == 12 and len(fake.posted) == 4 and len(fake.edits) == 8
    # No six accepted writes within 5 s (a little slack for the time between accepting and answering).
    assert all(later - earlier >= 5.0 - 0.05 for earlier, later in zip(times, times[5:], strict=False))
    assert time.monotonic() - started >= 10.0 - 0.1
    assert sum(status == 429 for _, _, status in fake.requests) <= 2


async def test_each_channel_has_its_own_bucket(client: RecordingClient, fake: FakeDiscord) -> None:
    fake.limit_channel_messages(count=2, per_s=30.0)
    other = client.get_partial_messageable(int(fake.add_text_channel("other")))
    started = time.monotonic()

    # One bucket for both would be empty after the second send, and discord.py would sleep 30 s before returning.
    await client.text_channel(fake.channel_id).send("one in general")
    await other.send("one in the other channel")

    assert time.monotonic() - started < 1.0
    assert [post["channel_id"] for post in fake.posted] == [fake.channel_id, str(other.id)]


async def test_a_burst_over_the_limit_gets_shared_429s_that_discord_py_retries(
    client: RecordingClient, fake: FakeDiscord
) -> None:
    fake.limit_channel_messages(count=2, per_s=1.0)
    url = f"{fake.api_base}/channels/{fake.channel_id}/messages"
    async with aiohttp.ClientSession(headers={"Authorization": f"Bot {fake.token}"}) as session:
        statuses = []
        for _ in range(3):
            async with session.post(url, json={"content": "raw"}) as response:
                statuses.append(response.status)
                body = await response.json()
    assert statuses == [200, 200, 429]
    assert response.headers["Via"] and response.headers["X-RateLimit-Scope"] == "shared"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert body["global"] is False and 0 < body["retry_after"] <= 1.0

    fake.limit_channel_messages(count=5, per_s=1.0)
    channel = client.text_channel(fake.channel_id)
    await asyncio.gather(*(channel.send(f"burst {n}") for n in range(7)))

    assert sorted(post["content"] for post in fake.posted[2:]) == [f"burst {n}" for n in range(7)]
    assert sum(status == 429 for _, _, status in fake.requests) <= 1 + 3
