"""Two bot processes, each holding one of two gateway shards of one bot token, sharing one Redis and nothing else."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests import fault_support
from tests.e2e_support import replies_to, wait_reply
from tests.fake_discord import FakeDiscord
from tests.fault_support import Cluster
from tests.redis_server import RedisServer
from tests.system import Process

pytestmark = pytest.mark.e2e


class Sharded:
    def __init__(self, cluster: Cluster, bots: list[Process], guilds: list[str]) -> None:
        self.cluster = cluster
        self.bots = bots
        """The bot process holding shard 0, then the one holding shard 1."""
        self.guilds = guilds
        """A guild on shard 0, then one on shard 1."""

    def channel(self, shard: int) -> str:
        return self.cluster.fake.guild_channel(self.guilds[shard])

    def queued_by(self, message_id: str) -> list[str]:
        """The bot processes that logged the message as queued (or pending)."""
        line = re.compile(rf"message {message_id} from user \d+: (queued|pending)")
        return [bot.name for bot in self.bots if line.search(bot.log())]


@pytest_asyncio.fixture
async def sharded(redis_server: RedisServer, tmp_path: Path) -> AsyncIterator[Sharded]:
    fake = FakeDiscord()
    guilds = [fake.add_guild("on shard 0", shard=0), fake.add_guild("on shard 1", shard=1)]
    async with fault_support.running_cluster(
        redis_server,
        tmp_path,
        fake=fake,
        bots=[{"SHARD_IDS": "0"}, {"SHARD_IDS": "1"}],
        identifications=2,
        SHARD_COUNT="2",
    ) as cluster:
        bots = [process for process in cluster.system.processes if process.name.startswith("bot")]
        for bot in bots:
            await cluster.system.wait_for_log(bot, "connected to Discord", timeout=30)
        yield Sharded(cluster, bots, guilds)


async def test_each_shard_queues_its_guilds_messages_once_and_consent_holds_on_both(sharded: Sharded) -> None:
    cluster = sharded.cluster
    fake = cluster.fake
    alice, bob = fake.add_user("alice"), fake.add_user("bob")
    # Consent given through one shard's process holds on the other's: it lives in Redis alone.
    optin = await fake.send_message(alice, "!optin", channel_id=sharded.channel(1))
    assert "opted in" in (await wait_reply(fake, optin["id"]))["content"]
    optin = await fake.send_message(bob, "!optin", dm=True)  # DMs arrive on shard 0
    assert "opted in" in (await wait_reply(fake, optin["id"]))["content"]

    asked = {
        "bot0": [
            await fake.send_message(alice, "Hey Llama, hello from shard zero", channel_id=sharded.channel(0)),
            await fake.send_message(alice, "a direct question", dm=True),
        ],
        "bot1": [
            await fake.send_message(bob, "Hey Llama, hello from shard one", channel_id=sharded.channel(1)),
            await fake.send_message(alice, "Hey Llama, and from shard one", channel_id=sharded.channel(1)),
        ],
    }
    ids = [message["id"] for messages in asked.values() for message in messages]
    await cluster.wait_answered(ids, timeout=30)
    await cluster.wait_drained(timeout=15)
    await asyncio.sleep(0.3)  # a second answer, if any, would be out by now
    cluster.assert_each_answered_once(ids)
    for holder, messages in asked.items():
        for message in messages:
            assert sharded.queued_by(message["id"]) == [holder], message["content"]
            assert fake.message(wait_reply_id(fake, message["id"]))["content"] == f"echo: {question(message)}"

    # Opting out through the other shard stops answers on both.
    optout = await fake.send_message(alice, "!optout", channel_id=sharded.channel(0))
    await wait_reply(fake, optout["id"])
    ignored = await fake.send_message(alice, "Hey Llama, still there?", channel_id=sharded.channel(1))
    later = await fake.send_message(bob, "Hey Llama, after alice left", channel_id=sharded.channel(1))
    await cluster.wait_answered([later["id"]], timeout=15)
    assert ignored["id"] not in cluster.accepted()
    # No answer; at most the consent prompt, since the quiet after `!optout` is remembered by the shard's own process.
    assert all(reply["components"] for reply in replies_to(fake, ignored["id"]))


def wait_reply_id(fake: FakeDiscord, message_id: str) -> str:
    [reply] = replies_to(fake, message_id)
    return str(reply["id"])


def question(message: dict[str, object]) -> str:
    content = str(message["content"])
    return content.removeprefix("Hey Llama, ")


async def test_a_killed_bot_process_loses_nothing_it_had_queued(sharded: Sharded) -> None:
    cluster = sharded.cluster
    fake = cluster.fake
    users = await cluster.opt_in(f"user{i}" for i in range(4))
    [runner] = cluster.alive("runner")
    cluster.pause(runner)  # the jobs stay in Redis, queued
    try:
        on_1 = [
            await fake.send_message(u, "Hey Llama, queued by shard one", channel_id=sharded.channel(1)) for u in users
        ]
        on_0 = [await fake.send_message(users[0], "Hey Llama, queued by shard zero", channel_id=sharded.channel(0))]
        ids = [m["id"] for m in on_1 + on_0]
        deadline = asyncio.get_running_loop().time() + 15
        while not cluster.accepted().issuperset(ids):
            assert asyncio.get_running_loop().time() < deadline, f"not queued: {set(ids) - cluster.accepted()}"
            await asyncio.sleep(0.02)
        cluster.kill(sharded.bots[1])  # SIGKILL: no chance to hand anything back
    finally:
        cluster.resume(runner)
    await cluster.wait_answered(ids, timeout=30)
    # The other shard's process goes on serving.
    after = await fake.send_message(users[1], "Hey Llama, after the kill", channel_id=sharded.channel(0))
    await cluster.wait_answered([after["id"]], timeout=15)
    await cluster.wait_drained(timeout=15)
    await asyncio.sleep(0.3)
    cluster.assert_each_answered_once([*ids, after["id"]])


async def test_shard_count_auto_holds_as_many_shards_as_discord_recommends(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    fake = FakeDiscord()
    fake.recommended_shards = 2
    guilds = [fake.add_guild("on shard 0", shard=0), fake.add_guild("on shard 1", shard=1)]
    # discord.py identifies its second shard 5 s after the first
    async with fault_support.running_cluster(
        redis_server, tmp_path, fake=fake, identifications=2, SHARD_COUNT="auto"
    ) as cluster:
        assert ("GET", "/gateway/bot", 200) in fake.requests
        [alice] = await cluster.opt_in(["alice"])
        asked = [
            await fake.send_message(alice, "Hey Llama, hi", channel_id=fake.guild_channel(guild)) for guild in guilds
        ]
        await cluster.wait_answered([m["id"] for m in asked], timeout=30)
