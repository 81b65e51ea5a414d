"""An updater killed between Discord creating its message and acknowledging the response: no reply is doubled."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from shared.queues.responses import parse_posted
from shared.queues.schemas import Response, decode_response
from tests.e2e_support import replies_to
from tests.fault_support import KEYS, MESSAGES_ROUTE, Cluster, message_post_statuses, running_cluster
from tests.redis_server import RedisServer
from tests.system import Process

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with running_cluster(redis_server, tmp_path_factory.mktemp("updater-faults")) as running:
        yield running


async def answers_held_by(cluster: Cluster, updater: Process) -> list[Response]:
    """The answers in an updater's own list (its "started" notices aside)."""
    held = [decode_response(raw) for raw in await cluster.held_by(updater)]
    return [response for response in held if response["kind"] == "answer"]


async def posted_parts(cluster: Cluster, job_id: str) -> dict[int, str]:
    """Part index -> message id, as posted:{job} records them."""
    return parse_posted(await cluster.redis.hgetall(KEYS.posted(job_id)), opted_in=True).posted


async def test_updater_killed_after_discord_created_the_reply_does_not_post_it_twice(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["ann"])
    [victim] = cluster.alive("updater")
    hold = fake.hold_next("POST", MESSAGES_ROUTE)
    question = await fake.send_message(user, "Hey Llama, post me once")
    await asyncio.wait_for(hold.arrived.wait(), 10)
    assert len(replies_to(fake, question["id"])) == 1  # Discord has it; the updater has not heard back
    cluster.kill(victim)
    hold.release()
    [held] = await answers_held_by(cluster, victim)
    assert held["job_id"] == question["id"]
    assert not await cluster.redis.exists(KEYS.posted(question["id"]))  # killed before it could record it

    successor = await cluster.start_updater()
    await cluster.system.wait_for_log(successor, f"updater {cluster.worker_ids[victim.name]} is gone", timeout=15)
    await cluster.system.wait_for_log(successor, f"job {question['id']} of user {user['id']}", timeout=15)
    await cluster.wait_drained(timeout=10)

    # The successor posted again with the same nonce, and Discord handed back the message it had made.
    assert len(replies_to(fake, question["id"])) == 1
    [reply] = replies_to(fake, question["id"])
    assert await posted_parts(cluster, question["id"]) == {0: reply["id"]}


async def test_updater_killed_after_recording_a_part_does_not_post_that_part_again(cluster: Cluster) -> None:
    # A long answer goes out in two parts. The first is posted and recorded in posted:{job}; the updater dies
    # while Discord creates the second, before the response is acknowledged. The successor must skip the
    # recorded part without asking Discord (a nonce is only honoured for minutes; the record lasts a week).
    fake = cluster.fake
    [user] = await cluster.opt_in(["bea"])
    [victim] = cluster.alive("updater")
    hold = fake.hold_next("POST", MESSAGES_ROUTE, skip=1)
    text = " ".join(f"word{i}" for i in range(450))  # about 3,500 characters: an answer of two parts
    question = await fake.send_message(user, f"Hey Llama, {text}")
    await asyncio.wait_for(hold.arrived.wait(), 10)
    cluster.kill(victim)
    hold.release()
    first, second = replies_to(fake, question["id"])
    assert await posted_parts(cluster, question["id"]) == {0: first["id"]}
    assert len(await answers_held_by(cluster, victim)) == 1  # recorded in part, not acknowledged

    after_kill = len(fake.requests)
    successor = await cluster.start_updater()
    await cluster.system.wait_for_log(successor, f"job {question['id']} of user {user['id']}", timeout=15)
    await cluster.wait_drained(timeout=10)

    assert [p["id"] for p in replies_to(fake, question["id"])] == [first["id"], second["id"]]
    assert first["content"] + " " + second["content"] == f"echo: {text}"
    assert len(message_post_statuses(fake, after_kill)) == 1, "the recorded part was sent to Discord again"
    assert await posted_parts(cluster, question["id"]) == {0: first["id"], 1: second["id"]}
