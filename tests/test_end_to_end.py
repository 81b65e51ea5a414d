"""The whole system as a user meets it: bot, runner and updater processes, real Redis, fake Discord, tiny model."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from shared.config.settings import Settings
from shared.queues.schemas import decode_job
from shared.storage.keys import Keys
from tests.e2e_support import (
    Deployment,
    history_key,
    keys_and_items_mentioning,
    replies_to,
    running_deployment,
    wait_reply,
)
from tests.fake_discord import FakeDiscord
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
KEYS = Keys()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def deployment(
    redis_server: RedisServer, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    async with running_deployment(
        FakeDiscord(), redis_server.url, str(tiny_model_dir), tmp_path_factory.mktemp("e2e")
    ) as deployment:
        yield deployment


async def test_opted_in_user_gets_a_reply_to_their_message(deployment: Deployment) -> None:
    fake = deployment.fake
    alice = await deployment.opt_in("alice")
    started = time.perf_counter()
    question, reply = await deployment.ask(alice, "Hey Llama, what are the train lines in Boston?")
    latency_s = time.perf_counter() - started
    print(f"\n'Hey Llama' to reply: {latency_s * 1000:.0f} ms")

    request = reply["_request"]
    assert reply["author"]["id"] == fake.bot_user["id"]
    assert reply["channel_id"] == question["channel_id"]
    assert str(request["message_reference"]["message_id"]) == question["id"]
    assert request["message_reference"].get("fail_if_not_exists") is False
    assert request["allowed_mentions"] == {"parse": [], "replied_user": True}
    assert request["nonce"] == f"{question['id']}-0" and request.get("enforce_nonce") is True
    assert reply["content"].strip()
    assert (question["channel_id"], question["id"], "👀") in fake.reactions
    history = await deployment.redis.get(history_key(alice["id"], deployment.fake.channel_id))
    assert history is not None and "what are the train lines in Boston?" in history


@pytest.mark.parametrize("address", ["mention", "dm", "reply"])
async def test_mention_dm_and_reply_to_the_bot_are_answered(deployment: Deployment, address: str) -> None:
    fake = deployment.fake
    user = await deployment.opt_in(f"user-{address}")
    if address == "mention":
        await deployment.ask(user, f"<@{fake.bot_user['id']}> what is a llama?")
    elif address == "dm":
        await deployment.ask(user, "what is a llama?", dm=True)
    else:
        _, first = await deployment.ask(user, "Hey llama, hi")
        await deployment.ask(user, "tell me more", reply_to=first["id"])


async def test_user_who_has_not_opted_in_is_only_prompted_and_nothing_is_stored(deployment: Deployment) -> None:
    fake = deployment.fake
    bob = fake.add_user("bob")
    prompted, unanswered, in_dm = [
        await fake.send_message(bob, "Hey Llama, what time is it?"),
        await fake.send_message(bob, f"<@{fake.bot_user['id']}> hello"),
        await fake.send_message(bob, "hello", dm=True),
    ]
    carol = await deployment.opt_in("carol")
    await deployment.ask(carol, "Hey Llama, are you there?")  # processed after bob's, in order
    await asyncio.sleep(0.5)
    for message in (prompted, in_dm):  # one consent prompt per channel, and no answer
        [prompt] = replies_to(fake, message["id"])
        assert prompt["components"] and "only answer people who opted in" in prompt["content"]
    assert replies_to(fake, unanswered["id"]) == []
    assert await keys_and_items_mentioning(deployment.redis, bob["id"]) == []


async def test_chatter_that_is_not_addressed_to_the_bot_is_ignored(deployment: Deployment) -> None:
    fake = deployment.fake
    dave = await deployment.opt_in("dave")
    chatter = await fake.send_message(dave, "I saw a llama at the zoo, it was enormous")
    await deployment.ask(dave, "Hey Llama, hi")
    await asyncio.sleep(0.3)
    assert replies_to(fake, chatter["id"]) == []
    turns = await deployment.redis.get(history_key(dave["id"], deployment.fake.channel_id))
    assert turns is not None and "zoo" not in turns


async def test_optout_stops_answers_and_erases_the_user(deployment: Deployment) -> None:
    fake = deployment.fake
    erin = await deployment.opt_in("erin")
    await deployment.ask(erin, "Hey Llama, remember that I like trains")
    assert await deployment.redis.exists(history_key(erin["id"], deployment.fake.channel_id))
    _, confirmation = await deployment.ask(erin, "!optout")
    assert "erased" in confirmation["content"]
    after = await fake.send_message(erin, "Hey Llama, are you still there?")
    frank = await deployment.opt_in("frank")
    await deployment.ask(frank, "Hey Llama, hi")
    await asyncio.sleep(0.5)
    assert replies_to(fake, after["id"]) == []
    assert await keys_and_items_mentioning(deployment.redis, erin["id"]) == []


async def test_forget_erases_history_and_keeps_the_user_opted_in(deployment: Deployment) -> None:
    grace = await deployment.opt_in("grace")
    await deployment.ask(grace, "Hey Llama, my name is Grace")
    _, confirmation = await deployment.ask(grace, "!forget")
    assert "forgotten" in confirmation["content"]
    assert not await deployment.redis.exists(history_key(grace["id"], deployment.fake.channel_id))
    await deployment.ask(grace, "Hey Llama, what is my name?")
    turns = await deployment.redis.get(history_key(grace["id"], deployment.fake.channel_id))
    assert turns is not None and "Grace" not in turns and "what is my name?" in turns


async def test_two_users_histories_never_mix(deployment: Deployment) -> None:
    fake = deployment.fake
    heidi, ivan = await deployment.opt_in("heidi"), await deployment.opt_in("ivan")
    sent = []
    for i in range(2):
        sent.append(await fake.send_message(heidi, f"Hey Llama, heidi-question-{i}"))
        sent.append(await fake.send_message(ivan, f"Hey Llama, ivan-question-{i}"))
    for message in sent:
        await wait_reply(fake, message["id"])
    for user, other in ((heidi, "ivan"), (ivan, "heidi")):
        turns = await deployment.redis.get(history_key(user["id"], deployment.fake.channel_id))
        assert turns is not None
        assert f"{user['username']}-question-0" in turns and f"{user['username']}-question-1" in turns
        assert other not in turns


async def test_help_explains_the_commands(deployment: Deployment) -> None:
    user = deployment.fake.add_user("judy")
    _, reply = await deployment.ask(user, "!help")
    assert "!optin" in reply["content"] and "!optout" in reply["content"] and "!forget" in reply["content"]
    assert await keys_and_items_mentioning(deployment.redis, user["id"]) == []


async def test_the_bots_own_replies_keep_to_their_budget_and_none_is_skipped(deployment: Deployment) -> None:
    fake = deployment.fake
    users = [fake.add_user(f"helpless{i}") for i in range(10)]
    await asyncio.sleep(1.1)  # earlier tests' replies leave the budget's window
    messages = await asyncio.gather(*(fake.send_message(user, "!help") for user in users))
    replies = [await wait_reply(fake, message["id"], timeout=30) for message in messages]
    times = sorted(reply["_received_at"] for reply in replies)
    per_s = int(Settings().bot_replies_per_s)
    # Counted where they arrive, as Discord counts: a window a little under a second leaves room for the
    # jitter between the bot taking its turn and the request reaching the server.
    busiest = max(sum(1 for t in times if start <= t < start + 0.9) for start in times)
    assert busiest <= per_s, f"{busiest} of the bot's replies within one second (budget {per_s}/s)"


async def test_runner_killed_mid_job_answer_arrives_exactly_once(deployment: Deployment) -> None:
    fake, system, redis = deployment.fake, deployment.system, deployment.redis
    for process in system.processes:
        if process.name.startswith("runner") and process.alive():
            process.popen.terminate()  # SIGTERM: it stops claiming and exits cleanly
            assert process.popen.wait(timeout=30) == 0
            assert "stopped: answered=" in process.log()
    # Long answers, so the kill lands while the model generates.
    victim = system.start("runner", MAX_NEW_TOKENS="400")
    await system.wait_for_log(victim, "taking jobs", timeout=120)
    victim_id = victim.log().split("runner ")[-1].split(" taking jobs")[0]

    kim = await deployment.opt_in("kim")
    question = await fake.send_message(kim, "Hey Llama, tell me a very long story about trains.")
    await system.wait_for_log(victim, f"job {question['id']} of user {kim['id']} claimed", timeout=30)
    system.kill(victim)
    held = await redis.lrange(KEYS.processing(victim_id), 0, -1)
    assert [decode_job(raw)["id"] for raw in held] == [question["id"]], "killed after it answered: no test"
    assert replies_to(fake, question["id"]) == []

    successor = system.start("runner")
    await wait_reply(fake, question["id"], timeout=90)
    await system.wait_for_log(successor, f"runner {victim_id} is gone: requeued 1 jobs")
    await asyncio.sleep(1.0)  # room for a duplicate to show up, were there one
    assert len(replies_to(fake, question["id"])) == 1
    assert not await redis.exists(KEYS.processing(victim_id))
