"""Hostile and odd input, secrets and mentions, through the real processes (echo engine: answers are predictable)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from shared.queues.reactions import WAITING_EMOJI
from shared.storage.keys import Keys
from tests.e2e_support import Deployment, history_key, keys_and_items_mentioning, replies_to, wait_reply
from tests.fake_discord import FakeDiscord
from tests.fake_discord.state import Payload
from tests.redis_server import RedisServer
from tests.system import System, base_env

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
KEYS = Keys()
REDIS_PASSWORD = "redis-pass-7f3a9c1e5b"
HF_TOKEN = "hf_fakeTokenThatMustNeverBeLogged42"
ECHO_DELAY_S = 0.4  # long enough that a user's second message is still waiting when they edit or delete it


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def admin_and_deployment(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[tuple[Payload, Deployment]]:
    server = RedisServer(tmp_path_factory.mktemp("redis-auth"), password=REDIS_PASSWORD)
    server.start()
    redis = Redis.from_url(server.url, decode_responses=True)
    fake = FakeDiscord()
    await fake.start()
    admin = fake.add_user("operator")
    env = base_env(
        redis_url=server.url,
        api_base=fake.api_base,
        gateway_url=fake.gateway_url,
        token=fake.token,
        model=f"echo:{ECHO_DELAY_S}",
    )
    env |= {"HF_TOKEN": HF_TOKEN, "ADMIN_USER_IDS": admin["id"], "MAX_INPUT_CHARS": "4000", "LOG_LEVEL": "DEBUG"}
    system = System(env, tmp_path_factory.mktemp("bad-input"))
    runner, updater = system.start("runner"), system.start("updater")
    system.start("bot")
    try:
        await fake.wait_identified(timeout=60)
        await system.wait_for_log(runner, "taking jobs", timeout=60)
        await system.wait_for_log(updater, "posting as", timeout=60)
        yield admin, Deployment(fake, system, redis)
    finally:
        codes = await asyncio.to_thread(system.stop_all)  # the fake keeps answering meanwhile
        logs = system.logs()
        await fake.stop()
        await redis.aclose()
        server.stop()
    assert all(code == 0 for code in codes.values()), f"exit codes {codes}\n{logs}"
    assert "Traceback" not in logs, logs
    interaction_tokens = [handle.token for handle in fake.interactions]
    assert interaction_tokens, "no interaction ran: the scan for their tokens would prove nothing"
    for secret in (fake.token, REDIS_PASSWORD, HF_TOKEN, *interaction_tokens):
        assert secret not in logs, "a secret appeared in the logs"


@pytest.fixture
def deployment(admin_and_deployment: tuple[Payload, Deployment]) -> Deployment:
    return admin_and_deployment[1]


async def test_model_output_cannot_ping_everyone_roles_or_users(deployment: Deployment) -> None:
    user = await deployment.opt_in("pinger")
    other = deployment.fake.add_user("bystander")
    _, reply = await deployment.ask(user, f"Hey Llama, @everyone @here <@&{deployment.fake.guild_id}> <@{other['id']}>")
    assert "@everyone" in reply["content"]  # the echo engine repeated it...
    assert reply["_request"]["allowed_mentions"] == {"parse": [], "replied_user": True}  # ...and nothing pings
    assert reply["mentions"] == [] or [m["id"] for m in reply["mentions"]] == [user["id"]]


async def test_wake_word_alone_gets_a_hint_and_nothing_is_queued(deployment: Deployment) -> None:
    user = await deployment.opt_in("shy")
    _, reply = await deployment.ask(user, "Hey Llama")
    assert "Ask me something" in reply["content"]
    _, reply = await deployment.ask(user, f"<@{deployment.fake.bot_user['id']}>")  # e.g. an attachment and a mention
    assert "Ask me something" in reply["content"]
    assert not await deployment.redis.exists(history_key(user["id"], deployment.fake.channel_id))


async def test_very_long_message_is_truncated_with_a_note(deployment: Deployment) -> None:
    user = await deployment.opt_in("verbose")
    question = await deployment.fake.send_message(user, "Hey Llama, " + "x" * 5000)
    await wait_reply(deployment.fake, question["id"])
    expected = "echo: " + "x" * 4000  # posted in 3 parts, after the note
    for _ in range(200):
        contents = [post["content"] for post in replies_to(deployment.fake, question["id"])]
        if len(contents) == 4:
            break
        await asyncio.sleep(0.02)
    assert sum("first 4000 characters" in c for c in contents) == 1
    parts = [c for c in contents if "first 4000" not in c]
    assert all(len(part) <= 2000 for part in parts) and "".join(parts) == expected


async def test_invisible_and_control_characters_are_stripped(deployment: Deployment) -> None:
    user = await deployment.opt_in("sneaky")
    _, reply = await deployment.ask(user, "Hey L\u200blama, what\u202e is\x00 2+2\u2066?")
    assert reply["content"] == "echo: what is 2+2?"


async def test_unterminated_code_block_is_answered(deployment: Deployment) -> None:
    user = await deployment.opt_in("coder")
    _, reply = await deployment.ask(user, "Hey Llama, fix this ```python\nprint('hi'")
    assert reply["content"].startswith("echo: fix this ```python")


async def test_bots_webhooks_and_the_bot_itself_are_ignored(deployment: Deployment) -> None:
    fake = deployment.fake
    other_bot = fake.add_user("otherbot", bot=True)
    ignored = [
        await fake.send_message(other_bot, "Hey Llama, loop with me"),
        await fake.send_message(fake.add_user("hook"), "Hey Llama, hi", webhook=True),
        await fake.send_message(fake.bot_user, "Hey Llama, talking to myself"),
    ]
    user = await deployment.opt_in("human")
    await deployment.ask(user, "Hey Llama, anyone there?")
    await asyncio.sleep(0.3)
    assert all(replies_to(fake, m["id"]) == [] for m in ignored)


async def test_edit_and_delete_of_waiting_messages(deployment: Deployment) -> None:
    fake = deployment.fake
    user = await deployment.opt_in("editor")
    first = await fake.send_message(user, "Hey Llama, first")
    second = await fake.send_message(user, "Hey Llama, second")
    third = await fake.send_message(user, "Hey Llama, third")
    await wait_for_reaction(fake, third, WAITING_EMOJI)
    await fake.edit_message(second["id"], "Hey Llama, second (edited)")
    await fake.delete_message(third["id"])
    await wait_reply(fake, first["id"])
    reply = await wait_reply(fake, second["id"])
    assert reply["content"] == "echo: second (edited)"
    await asyncio.sleep(ECHO_DELAY_S * 2)
    assert replies_to(fake, third["id"]) == []


async def test_opt_out_while_the_answer_is_being_generated(deployment: Deployment) -> None:
    fake = deployment.fake
    user = await deployment.opt_in("leaver")
    question = await fake.send_message(user, "Hey Llama, take your time")
    await fake.send_message(user, "!optout")
    await asyncio.sleep(ECHO_DELAY_S * 3)
    assert [p for p in replies_to(fake, question["id"]) if p["content"].startswith("echo")] == []
    assert await keys_and_items_mentioning(deployment.redis, user["id"]) == []


async def test_operator_commands_are_for_admins_only(
    admin_and_deployment: tuple[Payload, Deployment],
) -> None:
    admin, deployment = admin_and_deployment
    _, reply = await deployment.ask(deployment.fake.add_user("nosy"), "!stats")
    assert "Only server administrators" in reply["content"]
    _, reply = await deployment.ask(admin, "!stats")
    assert "Queue:" in reply["content"] and "live runners" in reply["content"]
    _, reply = await deployment.ask(admin, "!dead")
    assert reply["content"] == "No failed messages."
    _, reply = await deployment.ask(admin, "!replay 123")
    assert "No failed message" in reply["content"]


async def test_ask_and_a_refused_ask_log_no_token(deployment: Deployment) -> None:
    """At DEBUG: an `/ask` answered through its interaction, and one refused (not opted in); the fixture then scans
    every log for their tokens."""
    fake = deployment.fake
    user = await deployment.opt_in("asker")
    handle = await fake.invoke_command(user, "ask", {"question": "quietly"})
    await handle.wait_until(lambda h: bool(h.original and h.original["content"] == "echo: quietly"), what="answer")
    refused = await fake.invoke_command(fake.add_user("outsider"), "ask", {"question": "hello"})
    await refused.wait_followups(1)


async def wait_for_reaction(fake: FakeDiscord, message: Payload, emoji: str) -> None:
    for _ in range(500):
        if (message["channel_id"], message["id"], emoji) in fake.reactions:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"no {emoji} on {message['id']}: {fake.reactions}")
