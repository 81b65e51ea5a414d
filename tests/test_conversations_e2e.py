"""Conversations as people meet them, through the real processes and the fake Discord: channels that never share
a history, `!chat` threads where several people talk with the bot, and erasure in them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from runner.conversation import GROUP_CONVERSATION_LINE
from shared.queues.conversation_ids import private_conversation, shared_conversation
from shared.storage.keys import Keys
from tests.e2e_support import Deployment, keys_and_items_mentioning, replies_to, running_deployment, wait_reply
from tests.fake_discord import FakeDiscord
from tests.fake_discord.state import Payload
from tests.recording_runner import recorded_prompts
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
KEYS = Keys()


class Conversations(Deployment):
    prompts_file: Path
    other_channel: str

    def prompt_of(self, message: Payload) -> str:
        return recorded_prompts(self.prompts_file)[message["id"]]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def deployment(
    redis_server: RedisServer, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Conversations]:
    fake = FakeDiscord()
    other_channel = fake.add_text_channel("random")
    log_dir = tmp_path_factory.mktemp("conversations")
    prompts_file = log_dir / "prompts.jsonl"
    env = {"MAX_NEW_TOKENS": "8", "RECORD_PROMPTS_TO": str(prompts_file)}
    async with running_deployment(
        fake,
        redis_server.url,
        str(tiny_model_dir),
        log_dir,
        env=env,
        runner_module="tests.recording_runner",
        kind=Conversations,
    ) as conversations:
        conversations.prompts_file, conversations.other_channel = prompts_file, other_channel
        yield conversations


async def histories(redis: Redis) -> dict[str, str]:
    return {key: await redis.get(key) or "" async for key in redis.scan_iter(KEYS.history("*"))}


async def test_what_is_said_in_one_channel_never_reaches_another_channels_prompt(deployment: Conversations) -> None:
    fake = deployment.fake
    alice = await deployment.opt_in("alice")
    dm, _ = await deployment.ask(alice, "my locker code is 4711", dm=True)
    asked_here, _ = await deployment.ask(alice, "Hey Llama, what did I just tell you?")
    asked_there, _ = await deployment.ask(alice, "Hey Llama, and what about here?", channel_id=deployment.other_channel)

    assert "4711" in deployment.prompt_of(dm)
    assert "4711" not in deployment.prompt_of(asked_here), "a DM reached the prompt of a server channel"
    there = deployment.prompt_of(asked_there)
    assert "4711" not in there and "what did I just tell you" not in there, "one channel's talk reached another's"
    # In Redis too: one history per channel, none holding another channel's turns.
    stored = await histories(deployment.redis)
    dm_channel = dm["channel_id"]
    for channel, own, foreign in (
        (dm_channel, "4711", "what did I just tell you"),
        (fake.channel_id, "what did I just tell you", "4711"),
        (deployment.other_channel, "what about here", "4711"),
    ):
        turns = stored[KEYS.history(private_conversation(channel, alice["id"]))]
        assert own in turns and foreign not in turns


async def test_chat_opens_a_thread_where_opted_in_people_talk_together_by_name(deployment: Conversations) -> None:
    fake = deployment.fake
    bob, carol = await deployment.opt_in("bob"), await deployment.opt_in("carol")
    thread_id = await deployment.open_thread(bob, "weekend trip")
    thread = fake.thread(thread_id)
    assert (thread["name"], thread["type"], thread["parent_id"]) == ("weekend trip", 11, fake.channel_id)
    assert thread["owner_id"] == fake.bot_user["id"]
    [greeting] = await fake.wait_for_posts(1, channel_id=thread_id)
    assert "no need to say my name" in greeting["content"]
    assert await deployment.redis.hget(KEYS.thread(thread_id), "starter") == bob["id"]

    # No wake word, mention or reply: in the thread every opted-in member's message is for the bot.
    first = await fake.send_message(bob, "I'd rather go to the mountains", channel_id=thread_id)
    second = await fake.send_message(carol, "I prefer the sea", channel_id=thread_id)
    third = await fake.send_message(bob, "what do we each want?", channel_id=thread_id)
    replies = [await wait_reply(fake, m["id"]) for m in (first, second, third)]
    assert [r["channel_id"] for r in replies] == [thread_id] * 3
    assert replies[0]["id"] < replies[1]["id"] < replies[2]["id"], "answers came out of order"

    prompt = deployment.prompt_of(third)
    assert GROUP_CONVERSATION_LINE in prompt
    assert prompt.index("bob: I'd rather go to the mountains") < prompt.index("carol: I prefer the sea")
    assert prompt.index("carol: I prefer the sea") < prompt.index("bob: what do we each want?")
    assert "carol: I prefer the sea" not in deployment.prompt_of(first)
    assert "bob: I'd rather go to the mountains" in deployment.prompt_of(second)


async def test_in_a_thread_someone_who_never_opted_in_gets_only_the_consent_prompt_and_nothing_of_theirs_is_stored(
    deployment: Conversations,
) -> None:
    fake = deployment.fake
    dave = await deployment.opt_in("dave")
    thread_id = await deployment.open_thread(dave, "books")
    mallory = fake.add_user("mallorystranger")
    ignored = await fake.send_message(mallory, "Hey Llama, my secret is 9999", channel_id=thread_id)
    asked, _ = await deployment.ask(dave, "any good novels?", channel_id=thread_id)
    await asyncio.sleep(0.3)
    [prompt] = replies_to(fake, ignored["id"])
    assert prompt["components"] and "only answer people who opted in" in prompt["content"]
    assert "9999" not in deployment.prompt_of(asked) and "mallorystranger" not in deployment.prompt_of(asked)
    assert await keys_and_items_mentioning(deployment.redis, mallory["id"]) == []
    assert "mallorystranger" not in json.dumps(await histories(deployment.redis))


async def test_optout_and_forget_erase_a_participants_turns_in_the_thread_and_keep_the_others(
    deployment: Conversations,
) -> None:
    erin, frank, grace = [await deployment.opt_in(n) for n in ("erinleaves", "frankstays", "graceforgets")]
    thread_id = await deployment.open_thread(erin, "plans")
    for user, text in ((erin, "erin-said-this"), (frank, "frank-said-this"), (grace, "grace-said-this")):
        await deployment.ask(user, text, channel_id=thread_id)
    history_key = KEYS.history(shared_conversation(thread_id))
    stored = await deployment.redis.get(history_key) or ""
    assert "erin-said" in stored and "grace-said" in stored

    _, confirmation = await deployment.ask(erin, "!optout")
    assert "erased" in confirmation["content"]
    assert await keys_and_items_mentioning(deployment.redis, erin["id"]) == []
    everything = json.dumps(await histories(deployment.redis))
    assert "erinleaves" not in everything and "erin-said-this" not in everything

    _, confirmation = await deployment.ask(grace, "!forget")
    assert "forgotten" in confirmation["content"]
    turns = await deployment.redis.get(history_key) or ""
    assert "grace-said-this" not in turns and "graceforgets" not in turns
    assert "frankstays: frank-said-this" in deployment.prompt_of(
        (await deployment.ask(frank, "still here?", channel_id=thread_id))[0]
    )
    assert "frank-said-this" in (await deployment.redis.get(history_key) or "")
    assert await deployment.redis.sismember(KEYS.optin, grace["id"])


async def test_a_thread_the_bot_did_not_open_is_a_channel_like_any_other(deployment: Conversations) -> None:
    fake = deployment.fake
    heidi = await deployment.opt_in("heidi")
    starter = await fake.send_message(heidi, "a thread of my own")
    thread_id = await fake.create_thread(heidi, "heidi's thread", from_message=starter["id"])
    chatter = await fake.send_message(heidi, "just talking to friends here", channel_id=thread_id)
    asked, _ = await deployment.ask(heidi, "Hey Llama, hello", channel_id=thread_id)
    await asyncio.sleep(0.3)
    assert replies_to(fake, chatter["id"]) == []
    assert "just talking" not in deployment.prompt_of(asked)
    assert await deployment.redis.exists(KEYS.history(private_conversation(thread_id, heidi["id"])))
    assert not await deployment.redis.exists(KEYS.thread(thread_id))


async def test_chat_outside_a_server_channel_or_before_opting_in_explains_itself(deployment: Conversations) -> None:
    fake = deployment.fake
    ivan = await deployment.opt_in("ivan")
    _, in_dm = await deployment.ask(ivan, "!chat secrets", dm=True)
    assert "server channel" in in_dm["content"]
    stranger = fake.add_user("judy")
    _, not_in = await deployment.ask(stranger, "!chat hello")
    assert "Opt in first" in not_in["content"]
    assert await keys_and_items_mentioning(deployment.redis, stranger["id"]) == []
