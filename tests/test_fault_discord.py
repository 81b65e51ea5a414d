"""Discord misbehaving: rate limits, server errors, refusals and a dropped gateway, against the real processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from tests.e2e_support import replies_to
from tests.fake_discord.state import Payload
from tests.fault_support import MESSAGES_ROUTE, Cluster, message_post_statuses, running_cluster
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with running_cluster(redis_server, tmp_path_factory.mktemp("discord-faults")) as running:
        yield running


@pytest_asyncio.fixture(loop_scope="module")
async def user(cluster: Cluster, request: pytest.FixtureRequest) -> Payload:
    [opted_in] = await cluster.opt_in([request.node.name[:30]])
    return opted_in


async def ask_and_settle(cluster: Cluster, user: Payload, text: str) -> tuple[Payload, list[int]]:
    """Sends a question, waits until nothing is left to do, and returns it with the message POSTs it caused."""
    start = len(cluster.fake.requests)
    question = await cluster.fake.send_message(user, f"Hey Llama, {text}")
    await cluster.system.wait_for_log(cluster.alive("updater")[0], f"job {question['id']}", timeout=30)
    await cluster.wait_drained(timeout=30)
    await asyncio.sleep(0.2)
    return question, message_post_statuses(cluster.fake, start)


@pytest.mark.parametrize("global_", [False, True], ids=["route", "global"])
async def test_rate_limited_reply_is_retried_and_posted_once(cluster: Cluster, user: Payload, global_: bool) -> None:
    cluster.fake.fail_next("POST", MESSAGES_ROUTE, 429, times=2, retry_after=0.2, global_=global_)
    question, statuses = await ask_and_settle(cluster, user, "rate limits?")
    assert statuses == [429, 429, 200]
    [reply] = replies_to(cluster.fake, question["id"])
    assert reply["content"] == "echo: rate limits?"


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_server_error_after_discord_created_the_reply_does_not_double_it(
    cluster: Cluster, user: Payload, status: int
) -> None:
    # The worst kind of 5xx: Discord made the message, then failed to say so. discord.py retries 500/502 itself;
    # a 503 reaches the updater, which retries the response. Either way the same nonce finds the message.
    cluster.fake.fail_next("POST", MESSAGES_ROUTE, status, after_handling=True)
    question, statuses = await ask_and_settle(cluster, user, f"server error {status}?")
    assert statuses == [status, 200]
    [reply] = replies_to(cluster.fake, question["id"])
    assert reply["content"] == f"echo: server error {status}?"


@pytest.mark.parametrize("status", [403, 404], ids=["missing-permissions", "channel-deleted"])
async def test_final_refusal_is_logged_once_not_retried_and_the_job_is_finished(
    cluster: Cluster, user: Payload, status: int
) -> None:
    # One refusal only: were the updater to retry, the retry would succeed and show up as a reply.
    cluster.fake.fail_next("POST", MESSAGES_ROUTE, status)
    question, statuses = await ask_and_settle(cluster, user, f"refused with {status}?")
    await asyncio.sleep(1.0)  # a retry, were there one, would come within the updater's first backoff
    assert message_post_statuses(cluster.fake, 0)[-1] == status
    assert statuses == [status], "a final refusal was retried"
    assert replies_to(cluster.fake, question["id"]) == []
    [updater] = cluster.alive("updater")
    refusals = [line for line in updater.log().splitlines() if question["id"] in line and str(status) in line]
    assert len(refusals) == 1, refusals
    assert await cluster.busy_keys() == {}


async def test_gateway_disconnect_resumes_and_later_messages_are_answered(cluster: Cluster, user: Payload) -> None:
    fake = cluster.fake
    resumed = fake.resume_count
    await fake.disconnect_gateway()
    await fake.wait_resumed(timeout=30, count=resumed + 1)
    question, _ = await ask_and_settle(cluster, user, "still there?")
    [reply] = replies_to(fake, question["id"])
    assert reply["content"] == "echo: still there?"
    assert fake.identify_count == 1, "the bot identified again instead of resuming"
