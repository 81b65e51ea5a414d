"""A burst far past what the bot may queue: everyone gets one reply (an answer or "wait"), memory stays bounded."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from tests.fake_discord.state import Payload
from tests.fault_support import Cluster, reply_counts, rss_mib, running_cluster
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

USERS = 200
MESSAGES_PER_USER = 5
MAX_PENDING_PER_USER = 1
"""With one message in flight and one waiting per user, most users are told to wait for 3 of their 5.

Answers go out at most DISCORD_REQUESTS_PER_S=50 a second (Discord's global limit, which the updaters keep
to), so 800 accepted messages would take 16 s to answer; 1 pending instead of the default 3 keeps the
answered share near 400 (8 s) while the bot's "wait" replies cover the rest.
"""
JOB_TIME = "echo:1.0"
"""Each batch takes a second, so a user's first message is still in hand when their fifth arrives."""
REDIS_MEMORY_CAP_MIB = 32
PROCESS_RSS_CAP_MIB = 400
"""Generous: an idle bot or updater takes about 60 MiB and a runner with the echo engine less."""
WAIT_PREFIXES = ("You already have", "You're sending messages faster")


@dataclass
class Burst:
    sent: dict[str, list[str]]
    """Message ids of each user, in the order sent."""
    texts: dict[str, str]
    posted: list[Payload]
    peaks: dict[str, float]
    busy_after: dict[str, int]
    replies_by_message: Counter[str]
    bot_log: str


async def sample_memory(cluster: Cluster, peaks: dict[str, float]) -> None:
    """Keeps the highest Redis used_memory and process RSS seen, every 0.2 s, until cancelled."""
    while True:
        info = await cluster.redis.info("memory")
        peaks["redis"] = max(peaks.get("redis", 0.0), info["used_memory"] / 2**20)
        for process in cluster.system.processes:
            if process.alive():
                with contextlib.suppress(FileNotFoundError):
                    peaks[process.name] = max(peaks.get(process.name, 0.0), rss_mib(process))
        await asyncio.sleep(0.2)


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def burst(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Burst]:
    """1,000 messages from 200 users, sent as fast as the fake takes them, then everything drained."""
    async with running_cluster(
        redis_server,
        tmp_path_factory.mktemp("burst"),
        model=JOB_TIME,
        runners=2,
        BATCH_SIZE="64",
        DISCORD_REQUESTS_PER_S="50",
        BOT_REPLIES_PER_S="50",  # the fake has no global limit; this test is about losing and bounding nothing
        MAX_PENDING_PER_USER=str(MAX_PENDING_PER_USER),
    ) as cluster:
        fake = cluster.fake
        users = await cluster.opt_in(f"burst{i}" for i in range(USERS))
        peaks: dict[str, float] = {}
        sampling = asyncio.create_task(sample_memory(cluster, peaks))
        started = time.monotonic()
        sent: dict[str, list[str]] = {user["id"]: [] for user in users}
        texts: dict[str, str] = {}
        for n in range(MESSAGES_PER_USER):
            for user in users:
                text = f"burst {n} from {user['username']}"
                message = await fake.send_message(user, f"Hey Llama, {text}")
                sent[user["id"]].append(message["id"])
                texts[message["id"]] = text
        sent_s = time.monotonic() - started
        try:
            await cluster.wait_answered(texts, timeout=60)
            await cluster.wait_drained(timeout=15)
        finally:
            sampling.cancel()
            await asyncio.gather(sampling, return_exceptions=True)
        print(
            f"\n{len(texts)} messages sent in {sent_s:.1f} s, all replied to and drained in "
            f"{time.monotonic() - started:.1f} s"
        )
        await asyncio.sleep(0.5)  # room for a late duplicate, were there one
        [bot] = cluster.alive("bot")
        yield Burst(sent, texts, list(fake.posted), peaks, await cluster.busy_keys(), reply_counts(fake), bot.log())


async def test_every_message_gets_exactly_one_reply_an_answer_or_a_request_to_wait(burst: Burst) -> None:
    wrong = {m: n for m in burst.texts if (n := burst.replies_by_message[m]) != 1}
    assert not wrong, f"replies per message (want exactly 1): {wrong}"
    kinds: Counter[str] = Counter()
    for post in burst.posted:
        message_id = str(post["_request"]["message_reference"]["message_id"])
        if post["content"] == f"echo: {burst.texts[message_id]}":
            kinds["answered"] += 1
        else:
            assert post["content"].startswith(WAIT_PREFIXES), post["content"]
            kinds["told to wait"] += 1
    print(dict(kinds))
    assert sum(kinds.values()) == USERS * MESSAGES_PER_USER
    assert kinds["answered"] >= USERS and kinds["told to wait"] > 0


async def test_memory_stays_bounded_and_every_list_drains(burst: Burst) -> None:
    print("peak memory (MiB): " + ", ".join(f"{name}={mib:.0f}" for name, mib in sorted(burst.peaks.items())))
    assert burst.peaks["redis"] < REDIS_MEMORY_CAP_MIB
    for name, mib in burst.peaks.items():
        if name != "redis":
            assert mib < PROCESS_RSS_CAP_MIB, f"{name} peaked at {mib:.0f} MiB"
    assert burst.busy_after == {}


async def test_each_users_messages_reach_the_queue_in_the_order_sent(burst: Burst) -> None:
    handled: dict[str, list[str]] = {}
    for message_id, user_id in re.findall(r"message (\d+) from user (\d+): \w+", burst.bot_log):
        handled.setdefault(user_id, []).append(message_id)
    assert set(handled) == set(burst.sent)
    out_of_order = {
        user_id: [burst.sent[user_id].index(m) for m in handled[user_id]]
        for user_id in burst.sent
        if handled[user_id] != burst.sent[user_id]
    }
    assert not out_of_order, f"{len(out_of_order)} users' messages were queued out of order, e.g. " + str(
        list(out_of_order.values())[:5]
    )
