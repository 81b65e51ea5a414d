"""Redis absent at start and restarted mid-traffic: every process waits, reconnects, loses nothing and says so."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.texts import BUSY as BUSY_TEXT
from tests.e2e_support import history_key, replies_to, wait_reply
from tests.fault_support import Cluster, running_cluster
from tests.redis_server import RedisServer
from updater.rendering import STREAMING_MARKER

pytestmark = pytest.mark.e2e

OUTAGE_S = 2.0
"""Longer than the heartbeat TTL (1 s here), so every worker looks dead to the others when Redis returns."""


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of this test's own, not yet started; stopped at the end whatever happened."""
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    try:
        yield server
    finally:
        server.stop()


def assert_alive(cluster: Cluster) -> None:
    dead = [f"{p.name} ({p.popen.returncode})" for p in cluster.system.processes if not p.killed and not p.alive()]
    assert not dead, f"exited during the outage: {dead}\n{cluster.system.logs()}"


async def wait_accepted(cluster: Cluster, message_ids: list[str], timeout: float = 15.0) -> None:
    """Until the bot has logged each message as queued, which it does only once Redis took the job."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not cluster.accepted().issuperset(message_ids):
        assert asyncio.get_running_loop().time() < deadline, f"not accepted: {set(message_ids) - cluster.accepted()}"
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("stream_interval_s", ["0", "0.1"], ids=["whole-answers", "streaming"])
async def test_processes_wait_for_redis_then_survive_its_restart_losing_nothing(
    own_redis: RedisServer, tmp_path: Path, stream_interval_s: str
) -> None:
    async with running_cluster(
        own_redis, tmp_path, model="echo:0.3", runners=2, redis_late=True, STREAM_INTERVAL_S=stream_interval_s
    ) as cluster:
        fake, system = cluster.fake, cluster.system
        # Started before Redis was up (redis_late): each said so once and then went to work.
        for process in system.processes:
            assert process.log().count(f"waiting for Redis at {own_redis.url}") == 1, process.log()

        users = await cluster.opt_in(f"user{i}" for i in range(4))
        accepted = []
        for n in range(3):
            for user in users:
                accepted.append((await fake.send_message(user, f"Hey Llama, before {n} {user['username']}"))["id"])
        await wait_accepted(cluster, accepted)
        own_redis.stop()
        unanswered = [m for m in accepted if not replies_to(fake, m)]
        assert unanswered, "every answer was out before Redis stopped: the outage tested nothing"

        during = [await fake.send_message(user, f"Hey Llama, during {user['username']}") for user in users[:2]]
        asked = await fake.invoke_command(users[2], "ask", {"question": "during"})  # deferred, then told privately
        for message in during:
            assert (await wait_reply(fake, message["id"], timeout=OUTAGE_S * 3))["content"] == BUSY_TEXT
        [busy] = await asked.wait_followups(1, timeout=OUTAGE_S * 3)
        assert (busy["content"], busy["flags"], asked.original) == (BUSY_TEXT, 64, None)
        assert asked.callback is not None and asked.callback["after_s"] < 3.0
        await asyncio.sleep(OUTAGE_S)
        assert_alive(cluster)
        own_redis.start()

        await cluster.wait_answered(accepted, timeout=30)
        after = await fake.send_message(users[0], "Hey Llama, after")
        await cluster.wait_answered([after["id"]], timeout=15)
        await cluster.wait_drained(timeout=15)
        await asyncio.sleep(1.0)

        cluster.assert_each_answered_once([*accepted, *(m["id"] for m in during), after["id"]])
        for message_id in [*accepted, after["id"]]:  # streamed or not, each ends with its whole answer
            [reply] = replies_to(fake, message_id)
            shown = fake.message(reply["id"])["content"]
            assert shown.startswith("echo: ") and not shown.endswith(STREAMING_MARKER), shown
        for message_id in accepted:
            assert fake.message(replies_to(fake, message_id)[0]["id"])["content"].startswith("echo: before")
        # Heartbeats expired during the outage, so runners may have reaped each other's jobs in hand when it
        # ended: completion must still have happened once per job, which the history shows.
        for user in users:
            turns = json.loads(await cluster.redis.get(history_key(user["id"], cluster.fake.channel_id)) or "[]")
            asked = sorted(t["content"] for t in turns if t["role"] == "user" and t["content"].startswith("before"))
            assert asked == sorted(f"before {n} {user['username']}" for n in range(3))
        assert_alive(cluster)
        logs = system.logs()
        assert "Redis unreachable" in logs


async def test_redis_down_between_posting_and_recording_loses_nothing_and_leaks_nothing(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    own_redis.start()
    async with running_cluster(own_redis, tmp_path) as cluster:
        fake = cluster.fake
        [user] = await cluster.opt_in(["dora"])
        hold = fake.hold_next("POST", r"/channels/\d+/messages")
        question = await fake.send_message(user, "Hey Llama, mind the gap")
        await asyncio.wait_for(hold.arrived.wait(), 10)
        own_redis.stop()  # Discord made the message; the updater cannot record or acknowledge it
        hold.release()
        await asyncio.sleep(OUTAGE_S)
        assert_alive(cluster)
        own_redis.start()

        second = await fake.send_message(user, "Hey Llama, and after?")
        await cluster.wait_answered([question["id"], second["id"]], timeout=30)
        await cluster.wait_drained(timeout=15)
        cluster.assert_each_answered_once([question["id"], second["id"]])
