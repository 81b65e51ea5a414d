"""Streaming answers through the real processes and the fake Discord (which keeps every version of a message):
the reply grows as it is written, continues past 2,000 characters, and lands exactly once, whatever dies."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from shared.queues.conversation_ids import private_conversation
from shared.queues.reactions import TAKEN_EMOJI, WAITING_EMOJI
from tests.e2e_support import keys_holding, replies_to, wait_reply
from tests.fake_discord.state import Payload
from tests.fault_support import KEYS, Cluster, running_cluster
from tests.redis_server import RedisServer
from updater.rendering import STREAMING_MARKER

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

SLOW_ECHO = "echo:3.0"
"""Each answer takes 3 s, its words appearing step by step: several partial texts at 0.25 s apart."""
STREAMING = {"STREAM_INTERVAL_S": "0.25", "MODEL": SLOW_ECHO}
EDIT_ROUTE = r"/channels/\d+/messages/\d+"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with running_cluster(
        redis_server, tmp_path_factory.mktemp("streaming"), model=SLOW_ECHO, runners=2, **STREAMING
    ) as running:
        yield running


async def test_with_streaming_off_an_answer_is_one_post_and_no_edit(redis_server: RedisServer, tmp_path: Path) -> None:
    """First in the module: it needs the Redis server before the module's streaming deployment starts on it."""
    async with running_cluster(redis_server, tmp_path, model=SLOW_ECHO, STREAM_INTERVAL_S="0") as cluster:
        fake = cluster.fake
        [user] = await cluster.opt_in(["gus"])
        question = await fake.send_message(user, "Hey Llama, one piece please")
        await cluster.wait_answered([question["id"]], timeout=30)
        await cluster.wait_drained(timeout=10)
        [reply] = replies_to(fake, question["id"])
        assert fake.message_history(reply["id"]) == ["echo: one piece please"]
        assert not fake.edits


async def test_in_a_busy_channel_under_discords_channel_limit_partials_give_way_and_every_final_lands(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Before the module's deployment too. Discord lets 5 messages per 5 s into a channel, edits included: three
    answers streaming there at once must not stall their final texts."""
    async with running_cluster(redis_server, tmp_path, model=SLOW_ECHO, **STREAMING) as cluster:
        fake = cluster.fake
        fake.limit_channel_messages(count=5, per_s=5.0)
        users = await cluster.opt_in(["hal", "ida", "jon"])
        texts = {u["id"]: " ".join(f"{u['username']}{i}" for i in range(30)) for u in users}
        questions = [await fake.send_message(u, f"Hey Llama, {texts[u['id']]}") for u in users]
        finals = [await final_replies(cluster, q, timeout=60) for q in questions]
        assert [reply["content"] for [reply] in finals] == [f"echo: {texts[u['id']]}" for u in users]
        message_requests = [
            status for method, path, status in fake.requests if method in ("POST", "PATCH") and "/messages" in path
        ]
        assert message_requests.count(429) <= 2, f"partials ran into the channel's limit: {message_requests}"
        assert all(len(replies_to(fake, q["id"])) == 1 for q in questions)


async def test_a_long_answer_continues_in_a_second_message_and_the_first_is_not_edited_once_complete(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    """Before the module's deployment too: a slow answer, so that its second part streams for a while."""
    async with running_cluster(
        redis_server, tmp_path, model="echo:12.0", **{**STREAMING, "MODEL": "echo:12.0"}
    ) as cluster:
        fake = cluster.fake
        [user] = await cluster.opt_in(["bea"])
        words = " ".join(f"word{i}" for i in range(450))  # ~3,500 characters: two parts
        question = await fake.send_message(user, f"Hey Llama, {words}")
        first, second = await final_replies(cluster, question, parts=2)
        assert first["content"] + " " + second["content"] == f"echo: {words}"
        assert second["message_reference"]["message_id"] == question["id"]
        second_versions = fake.message_history(second["id"])
        assert len(second_versions) >= 2 and second_versions[0].endswith(STREAMING_MARKER), "part 2 never streamed"
        # From the moment the second part existed, the first showed its final text and was never edited again.
        history = fake.message_history(first["id"])
        complete_at = history.index(first["content"])
        assert history[complete_at:] == [first["content"]], history[complete_at:]
        assert complete_at >= 1, "the first part streamed too"


async def final_replies(cluster: Cluster, question: Payload, parts: int = 1, timeout: float = 30) -> list[Payload]:
    """The bot's replies to `question` once there are `parts` of them and none shows the streaming marker."""
    fake = cluster.fake
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        replies = replies_to(fake, question["id"])
        current = [fake.message(r["id"])["content"] for r in replies if r["id"] in fake_messages(cluster)]
        if len(current) == parts and not any(text.endswith(STREAMING_MARKER) for text in current):
            await cluster.wait_drained(timeout=10)
            return [fake.message(r["id"]) for r in replies]
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"no final reply in {timeout}s: {current}\n{cluster.system.logs()[-4000:]}")
        await asyncio.sleep(0.05)


def fake_messages(cluster: Cluster) -> set[str]:
    return {r["id"] for r in cluster.fake.posted if r["id"] not in {m for _, m in cluster.fake.deleted}}


async def test_an_answer_is_one_message_that_grows_and_ends_without_the_marker(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["ann"])
    question = await fake.send_message(user, "Hey Llama, " + " ".join(f"w{i}" for i in range(40)))
    [reply] = await final_replies(cluster, question)
    versions = fake.message_history(reply["id"])
    expected = "echo: " + " ".join(f"w{i}" for i in range(40))
    assert reply["content"] == expected
    assert len(versions) >= 3, f"edited too rarely to be streaming: {versions}"
    assert all(v.endswith(STREAMING_MARKER) for v in versions[:-1]) and versions[-1] == expected
    grown = [len(v) for v in versions[:-1]]
    assert grown == sorted(grown), "a stale partial overwrote a newer one"
    # ⏳ when queued, 👀 when a runner started; typing until the first words appeared.
    channel = question["channel_id"]
    assert (channel, question["id"], WAITING_EMOJI) in fake.reactions
    assert (channel, question["id"], TAKEN_EMOJI) in fake.reactions
    assert (channel, question["id"], WAITING_EMOJI) in fake.reactions_removed
    assert channel in fake.typing
    assert not [key async for key in cluster.redis.scan_iter(KEYS.stream("*"))], "a finished job's stream stayed"


async def test_a_runner_killed_mid_stream_is_retried_in_the_same_message(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["cid"])
    question = await fake.send_message(user, "Hey Llama, " + " ".join(f"k{i}" for i in range(30)))
    await wait_reply(fake, question["id"])  # a partial is on Discord: the runner is mid-stream
    victim = await cluster.wait_for_any_log(cluster.alive("runner"), f"job {question['id']} of user")
    cluster.kill(victim)
    cluster.start("runner", **STREAMING)
    [reply] = await final_replies(cluster, question, timeout=60)
    assert reply["content"] == "echo: " + " ".join(f"k{i}" for i in range(30))
    assert len(replies_to(fake, question["id"])) == 1, "the retry posted a second reply"


async def test_an_updater_killed_mid_edit_leaves_one_message_with_the_final_text(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["dot"])
    hold = fake.hold_next("PATCH", EDIT_ROUTE)
    question = await fake.send_message(user, "Hey Llama, " + " ".join(f"u{i}" for i in range(30)))
    await asyncio.wait_for(hold.arrived.wait(), 20)  # an edit reached Discord; the updater has not heard back
    [victim] = cluster.alive("updater")
    cluster.kill(victim)
    hold.release()
    await cluster.start_updater()
    [reply] = await final_replies(cluster, question, timeout=60)
    assert reply["content"] == "echo: " + " ".join(f"u{i}" for i in range(30))
    assert len(replies_to(fake, question["id"])) == 1


async def test_opting_out_mid_stream_deletes_the_partial_and_stores_nothing(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["eve"])
    question = await fake.send_message(user, "Hey Llama, " + " ".join(f"e{i}" for i in range(30)))
    await wait_reply(fake, question["id"])
    [partial] = replies_to(fake, question["id"])
    await fake.send_message(user, "!optout")
    deadline = asyncio.get_running_loop().time() + 20
    while (fake.channel_id, partial["id"]) not in fake.deleted:
        assert asyncio.get_running_loop().time() < deadline, "the partial answer was not deleted"
        await asyncio.sleep(0.05)
    await cluster.wait_drained(timeout=10)
    await asyncio.sleep(1.0)  # room for a late edit or post, were there one
    assert [r["id"] for r in replies_to(fake, question["id"])] == [partial["id"]]
    assert fake.message_history(partial["id"])[-1] != "echo: " + " ".join(f"e{i}" for i in range(30))
    leftovers = [key async for key in cluster.redis.scan_iter("*") if question["id"] in key]
    assert leftovers == [], leftovers


async def test_429s_and_500s_on_edits_still_end_with_the_final_text(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["fay"])
    fake.fail_next("PATCH", EDIT_ROUTE, 429, times=2, retry_after=0.2)
    fake.fail_next("PATCH", EDIT_ROUTE, 500, times=2)
    question = await fake.send_message(user, "Hey Llama, " + " ".join(f"f{i}" for i in range(30)))
    [reply] = await final_replies(cluster, question, timeout=60)
    assert reply["content"] == "echo: " + " ".join(f"f{i}" for i in range(30))
    statuses = [status for method, path, status in fake.requests if method == "PATCH"]
    assert 429 in statuses and 500 in statuses, "the faults were not hit: the test proved nothing"
    assert len(replies_to(fake, question["id"])) == 1


async def test_forget_mid_stream_posts_the_answer_and_stores_nothing_of_it_or_of_what_waited(
    cluster: Cluster,
) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["ivy"])
    texts = [" ".join(f"{word}{i}" for i in range(30)) for word in ("ivyasked", "ivyqueued")]
    question, waiting = [await fake.send_message(user, f"Hey Llama, {text}") for text in texts]
    await wait_reply(fake, question["id"])  # the first partial is on Discord: the answer is being written
    # Queued behind it before the forget, not after.
    await cluster.wait_for_any_log(cluster.alive("bot"), f"message {waiting['id']} from user {user['id']}: pending")
    await wait_reply(fake, (await fake.send_message(user, "!forget"))["id"])
    [partial] = replies_to(fake, question["id"])
    assert fake.message(partial["id"])["content"].endswith(STREAMING_MARKER), "the answer ended before the forget"
    for asked, text in zip((question, waiting), texts, strict=True):
        [reply] = await final_replies(cluster, asked)
        assert reply["content"] == f"echo: {text}", "an answer begun before the forget is still posted"
    conversation = private_conversation(fake.channel_id, user["id"])
    assert not await cluster.redis.exists(KEYS.history(conversation), KEYS.conversations(user["id"]))
    for word in ("ivyasked", "ivyqueued"):
        assert await keys_holding(cluster.redis, word) == [], "an exchange begun before the forget was stored after it"
