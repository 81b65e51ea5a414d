"""First contact and who the bot answers, through the real processes: the consent prompt someone who has not opted
in gets (once an hour per channel, nothing of them in Redis), its Opt in and No thanks buttons (only theirs to press,
deferred while Redis stalls, still working after a restart), the message it holds (answered after Opt in, dropped
after CONSENT_HOLD_S), CONSENT_PROMPT=false, and a server's role list (`!access role ...`, `/access role ...`)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from bot.consent_buttons import NO_THANKS_ID, OPT_IN_ID
from shared.queues.conversation_ids import private_conversation
from tests.e2e_support import replies_to, stored_anywhere, wait_reply
from tests.fake_discord import FakeDiscord
from tests.fake_discord.interactions import CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, EPHEMERAL_FLAG
from tests.fake_discord.state import Payload
from tests.fault_support import KEYS, Cluster, running_cluster
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

HOLD_S = 4.0
"""CONSENT_HOLD_S here: long enough to press in time, short enough to wait out."""

QUIET_S = 1.5
"""How long a test waits to be sure the bot says nothing (an echo answer takes milliseconds)."""


@dataclass
class FirstContact:
    """The running deployment, and what its fake Discord was given before the bot connected."""

    cluster: Cluster
    fans: str
    """A role of the guild."""
    boss: Payload
    """A member holding a role with the administrator permission (not in ADMIN_USER_IDS)."""
    elsewhere: str
    allowed: str
    """Two more text channels of the guild."""

    @property
    def fake(self) -> FakeDiscord:
        return self.cluster.fake

    @property
    def redis(self) -> Redis:
        return self.cluster.redis


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def contact(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[FirstContact]:
    fake = FakeDiscord()
    fans = fake.add_role("Llama fans")
    boss = fake.add_user("boss")
    fake.give_role(boss, fake.add_role("Admins", administrator=True))
    elsewhere, allowed = fake.add_text_channel("elsewhere"), fake.add_text_channel("allowed")
    log_dir = tmp_path_factory.mktemp("first-contact")
    async with running_cluster(redis_server, log_dir, fake=fake, CONSENT_HOLD_S=str(HOLD_S)) as running:
        yield FirstContact(running, fans, boss, elsewhere, allowed)


async def prompt_for(fake: FakeDiscord, message: Payload, timeout: float = 15.0) -> Payload:
    """The consent prompt replying to `message` (a reply carrying buttons)."""
    deadline = time.monotonic() + timeout
    while not (found := [p for p in replies_to(fake, message["id"]) if p["components"]]):
        assert time.monotonic() < deadline, f"no consent prompt for {message['id']}: {fake.posted[-3:]}"
        await asyncio.sleep(0.02)
    [prompt] = found
    return prompt


async def answer_to(fake: FakeDiscord, message: Payload, timeout: float = 15.0) -> Payload:
    """The answer (an echo of the question) replying to `message`."""
    deadline = time.monotonic() + timeout
    while not (found := [p for p in replies_to(fake, message["id"]) if p["content"].startswith("echo")]):
        assert time.monotonic() < deadline, f"no answer to {message['id']}: {replies_to(fake, message['id'])}"
        await asyncio.sleep(0.02)
    return found[0]


def buttons(prompt: Payload) -> list[tuple[str, str]]:
    return [(b["label"], b["custom_id"]) for row in prompt["components"] for b in row["components"]]


async def test_a_newcomer_is_prompted_once_and_opt_in_answers_the_held_message(contact: FirstContact) -> None:
    fake = contact.fake
    ada = fake.add_user("ada")
    asked = await fake.send_message(ada, "Hey Llama, what rhymes with quokka")
    prompt = await prompt_for(fake, asked)
    assert buttons(prompt) == [("Opt in", OPT_IN_ID), ("No thanks", NO_THANKS_ID)]
    assert f"<@{ada['id']}>" in prompt["content"] and "opted in" in prompt["content"]
    assert prompt["mentions"] == [], "the prompt pings nobody"
    again = await fake.send_message(ada, f"<@{fake.bot_user['id']}> hello? quokka", mention_bot=True)
    await asyncio.sleep(QUIET_S)
    assert replies_to(fake, again["id"]) == [], "one prompt per channel an hour"
    assert await stored_anywhere(contact.redis, ada["id"], "quokka") == [], "nothing of her before Opt in"

    pressed = await fake.press_button(ada, prompt["id"], OPT_IN_ID)
    answer = await answer_to(fake, asked)
    assert answer["content"] == "echo: what rhymes with quokka"
    assert pressed.callback is not None and pressed.callback["type"] == DEFERRED_UPDATE_MESSAGE
    assert pressed.callback["after_s"] < 3.0
    edited = fake.message(prompt["id"])
    assert edited["components"] == [] and "You're opted in: answering your message now" in edited["content"]
    assert await contact.redis.sismember(KEYS.optin, ada["id"])
    assert replies_to(fake, again["id"]) == [], "only the message that prompted is held and answered"


async def test_only_the_person_asked_may_press_and_no_thanks_deletes_the_prompt_for_a_day(
    contact: FirstContact,
) -> None:
    fake = contact.fake
    bea, nosy = fake.add_user("bea"), fake.add_user("nosy")
    asked = await fake.send_message(bea, "Hey Llama, my pin is 4471 guava")
    prompt = await prompt_for(fake, asked)
    refused = await fake.press_button(nosy, prompt["id"], OPT_IN_ID)
    callback = await refused.wait_responded()
    assert callback["type"] == CHANNEL_MESSAGE and callback["flags"] & EPHEMERAL_FLAG
    assert "isn't for you" in callback["content"]
    assert fake.message(prompt["id"])["components"], "the prompt is untouched"
    assert not await contact.redis.sismember(KEYS.optin, nosy["id"])

    declined = await fake.press_button(bea, prompt["id"], NO_THANKS_ID)
    deadline = time.monotonic() + 10
    while (fake.channel_id, prompt["id"]) not in fake.deleted:
        assert time.monotonic() < deadline, "the prompt was not deleted"
        await asyncio.sleep(0.02)
    assert declined.callback is not None and declined.callback["type"] == DEFERRED_UPDATE_MESSAGE
    later = await fake.send_message(bea, "Hey Llama, and now? guava", channel_id=contact.elsewhere)
    await asyncio.sleep(QUIET_S)
    assert replies_to(fake, later["id"]) == [] and replies_to(fake, asked["id"]) == [prompt]
    assert await stored_anywhere(contact.redis, bea["id"], nosy["id"], "guava") == []


async def test_the_held_message_is_dropped_after_consent_hold_s(contact: FirstContact) -> None:
    fake = contact.fake
    cai = fake.add_user("cai")
    asked = await fake.send_message(cai, "Hey Llama, too slow to press")
    prompt = await prompt_for(fake, asked)
    await asyncio.sleep(HOLD_S + 0.5)
    await fake.press_button(cai, prompt["id"], OPT_IN_ID)
    deadline = time.monotonic() + 10
    while "You're opted in" not in fake.message(prompt["id"])["content"]:
        assert time.monotonic() < deadline, "the prompt was not updated"
        await asyncio.sleep(0.02)
    assert "no longer have the message" in fake.message(prompt["id"])["content"]
    await asyncio.sleep(QUIET_S)
    assert replies_to(fake, asked["id"]) == [prompt], "the held message is gone: not answered"
    assert await contact.redis.sismember(KEYS.optin, cai["id"])


async def test_a_press_is_deferred_within_three_seconds_while_redis_stalls(contact: FirstContact) -> None:
    fake = contact.fake
    dev = fake.add_user("dev")
    asked = await fake.send_message(dev, "Hey Llama, are you slow today")
    prompt = await prompt_for(fake, asked)
    side = Redis.from_url(contact.cluster.server.url, decode_responses=True)
    try:
        await side.execute_command("CLIENT", "PAUSE", "4000", "ALL")
        pressed = await fake.press_button(dev, prompt["id"], OPT_IN_ID)
        callback = await pressed.wait_responded(timeout=10)
    finally:
        await side.aclose()
    assert callback["type"] == DEFERRED_UPDATE_MESSAGE and callback["after_s"] < 3.0
    assert (await answer_to(fake, asked, timeout=30))["content"] == "echo: are you slow today"


async def test_a_newcomer_in_a_shared_thread_is_prompted_and_answered_there(contact: FirstContact) -> None:
    fake = contact.fake
    [host] = await contact.cluster.opt_in(["host"])
    await fake.send_message(host, "!chat llamas")
    deadline = time.monotonic() + 30
    while not fake.threads:
        assert time.monotonic() < deadline, "no thread was opened"
        await asyncio.sleep(0.02)
    thread_id = str(fake.threads[-1]["id"])
    await fake.wait_for_posts(1, channel_id=thread_id)  # the greeting
    eve = fake.add_user("eve")
    asked = await fake.send_message(eve, "do llamas hum", channel_id=thread_id)  # no wake word: a shared thread
    prompt = await prompt_for(fake, asked)
    await fake.press_button(eve, prompt["id"], OPT_IN_ID)
    assert "do llamas hum" in (await answer_to(fake, asked))["content"]


@asynccontextmanager
async def replaced_bot(cluster: Cluster, **env: str) -> AsyncIterator[None]:
    """The running bot stopped (SIGTERM) and another started with `env`, serving for the block."""
    [old] = cluster.alive("bot")
    old.popen.send_signal(signal.SIGTERM)
    assert await asyncio.to_thread(old.popen.wait, 30) == 0
    identified = cluster.fake.identify_count
    cluster.start("bot", **env)
    await cluster.fake.wait_identified(timeout=60, count=identified + 1)
    yield


async def test_a_press_after_a_bot_restart_still_opts_in_and_says_the_message_is_gone(contact: FirstContact) -> None:
    fake = contact.fake
    fay = fake.add_user("fay")
    asked = await fake.send_message(fay, "Hey Llama, before the restart")
    prompt = await prompt_for(fake, asked)
    async with replaced_bot(contact.cluster):
        pressed = await fake.press_button(fay, prompt["id"], OPT_IN_ID)
        await pressed.wait_until(lambda h: "You're opted in" in fake.message(prompt["id"])["content"], what="the edit")
    assert "no longer have the message" in fake.message(prompt["id"])["content"]
    assert await contact.redis.sismember(KEYS.optin, fay["id"])


async def test_with_consent_prompt_off_a_newcomer_gets_nothing(contact: FirstContact) -> None:
    fake = contact.fake
    gus = fake.add_user("gus")
    async with replaced_bot(contact.cluster, CONSENT_PROMPT="false"):
        asked = await fake.send_message(gus, "Hey Llama, anyone there? mango")
        await asyncio.sleep(QUIET_S)
        assert replies_to(fake, asked["id"]) == []
    async with replaced_bot(contact.cluster):
        pass
    assert await stored_anywhere(contact.redis, gus["id"], "mango") == []


async def test_no_prompt_in_a_channel_the_bot_does_not_answer_in(contact: FirstContact) -> None:
    fake, boss = contact.fake, contact.boss
    assert "Done" in await command(fake, boss, f"!channels allow <#{contact.allowed}>")
    try:
        hal = fake.add_user("hal")
        outside = await fake.send_message(hal, "Hey Llama, hello from outside")
        await asyncio.sleep(QUIET_S)
        assert replies_to(fake, outside["id"]) == []
        inside = await fake.send_message(hal, "Hey Llama, hello from inside", channel_id=contact.allowed)
        await prompt_for(fake, inside)
    finally:
        assert "Done" in await command(fake, boss, "!channels reset")


async def command(fake: FakeDiscord, user: Payload, text: str) -> str:
    return str((await wait_reply(fake, (await fake.send_message(user, text))["id"], timeout=15))["content"])


async def test_with_a_role_list_only_members_holding_a_role_are_answered_or_prompted(contact: FirstContact) -> None:
    fake, fans, boss = contact.fake, contact.fans, contact.boss
    fan, outsider = await contact.cluster.opt_in(["fan", "outsider"])
    fake.give_role(fan, fans)
    assert await command(fake, outsider, f"!access role allow <@&{fans}>") == (
        "Only server administrators can use that command."
    )
    assert "Done: I answer only members holding" in await command(fake, boss, f"!access role allow <@&{fans}>")
    try:
        assert f"<@&{fans}>" in await command(fake, boss, "!access role list")
        asked = await fake.send_message(fan, "Hey Llama, fans first")
        assert (await answer_to(fake, asked))["content"] == "echo: fans first"
        ignored = await fake.send_message(outsider, "Hey Llama, me too? kiwano")
        newcomer, newcomer_fan = fake.add_user("newcomer"), fake.add_user("newcomer-fan")
        fake.give_role(newcomer_fan, fans)
        unprompted = await fake.send_message(newcomer, "Hey Llama, hi there kiwano")
        prompted = await fake.send_message(newcomer_fan, "Hey Llama, hi there")
        await prompt_for(fake, prompted)
        boss_asks = await fake.send_message(boss, "Hey Llama, administrators always")
        await prompt_for(fake, boss_asks)  # an administrator passes the role list (and has not opted in)
        await asyncio.sleep(QUIET_S)
        assert replies_to(fake, ignored["id"]) == [] and replies_to(fake, unprompted["id"]) == []
        assert not await contact.redis.exists(KEYS.history(private_conversation(fake.channel_id, outsider["id"])))
        assert await stored_anywhere(contact.redis, newcomer["id"], "kiwano") == []
        assert "wasn't on the list" in await command(fake, boss, "!access role deny <@&1234>")
    finally:
        reset = await command(fake, boss, "!access role reset")
    assert "Done: the list of 1 role is gone" in reset
    again = await fake.send_message(outsider, "Hey Llama, and now?")
    assert (await answer_to(fake, again))["content"] == "echo: and now?"


async def test_access_as_a_slash_command_is_hidden_from_members_and_works_for_administrators(
    contact: FirstContact,
) -> None:
    fake, fans = contact.fake, contact.fans
    [member] = await contact.cluster.opt_in(["member"])
    deadline = time.monotonic() + 30
    while not fake.command_syncs:
        assert time.monotonic() < deadline, "the bot did not sync its commands"
        await asyncio.sleep(0.05)
    with pytest.raises(PermissionError):
        await fake.invoke_command(member, "access", {"role": fans}, subcommand="role allow")
    handle = await fake.invoke_command(member, "access", {"role": fans}, subcommand="role allow", admin=True)
    await handle.wait_until(lambda h: bool(h.original and h.original["content"]), what="an answer")
    assert handle.ephemeral and handle.original is not None
    assert "Done: I answer only members holding" in handle.original["content"]
    assert await contact.redis.hget(KEYS.server(fake.guild_id), f"role:{fans}") == "1"
    reset = await fake.invoke_command(member, "access", {}, subcommand="role reset", admin=True)
    await reset.wait_until(lambda h: bool(h.original and "gone" in h.original["content"]), what="the reset")
    assert not await contact.redis.hexists(KEYS.server(fake.guild_id), f"role:{fans}")
