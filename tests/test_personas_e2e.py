"""Personas and where the bot speaks, through the real processes and the fake Discord: the prompts the real runner
was given (tests/recording_runner.py) show which persona applied; the fake's posts and a scan of Redis show where
the bot answered and what it kept."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from runner.conversation import GROUP_CONVERSATION_LINE
from shared.config.settings import Settings
from shared.storage.keys import Keys
from shared.stores.personas import PERSONA_MAX_CHARS
from tests.e2e_support import (
    Deployment,
    entries,
    history_key,
    keys_and_items_mentioning,
    replies_to,
    running_deployment,
)
from tests.fake_discord import FakeDiscord
from tests.fake_discord.state import Payload
from tests.recording_runner import recorded_prompts
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
KEYS = Keys()
DEFAULT_PROMPT = Settings().system_prompt


class Personas(Deployment):
    prompts_file: Path
    admin: Payload
    pirates: str
    """A channel of the first guild ("Fake Guild"), whose persona tests set."""
    elsewhere: str
    """The "general" channel of a second guild ("Elsewhere")."""
    gated_guild: str
    gated: str
    gated_other: str
    """Two channels of a third guild ("Gated") whose allow-list tests set."""

    def prompt_of(self, message: Payload) -> str:
        return recorded_prompts(self.prompts_file)[message["id"]]

    async def asked_prompt(self, user: Payload, text: str, **options: object) -> str:
        message, _ = await self.ask(user, text, **options)
        return self.prompt_of(message)

    async def user_thread(self, user: Payload, channel_id: str) -> str:
        """A thread a user opened (not a shared one): a channel of its own that follows its parent."""
        starter = await self.fake.send_message(user, "a thread of mine", channel_id=channel_id)
        return await self.fake.create_thread(user, "mine", from_message=starter["id"])

    async def silence(self, message: Payload, wait_s: float = 1.0) -> None:
        """Asserts the bot did not answer `message` (given time to)."""
        await asyncio.sleep(wait_s)
        assert replies_to(self.fake, message["id"]) == [], f"the bot answered: {replies_to(self.fake, message['id'])}"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def deployment(
    redis_server: RedisServer, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Personas]:
    fake = FakeDiscord()
    pirates = fake.add_text_channel("pirates")
    elsewhere = fake.guild_channel(fake.add_guild("Elsewhere"))
    gated_guild = fake.add_guild("Gated")
    gated, gated_other = fake.guild_channel(gated_guild), fake.add_text_channel("allowed", gated_guild)
    admin = fake.add_user("operator")
    log_dir = tmp_path_factory.mktemp("personas")
    prompts_file = log_dir / "prompts.jsonl"
    env = {"MAX_NEW_TOKENS": "4", "RECORD_PROMPTS_TO": str(prompts_file), "ADMIN_USER_IDS": admin["id"]}
    async with running_deployment(
        fake,
        redis_server.url,
        str(tiny_model_dir),
        log_dir,
        env=env,
        runner_module="tests.recording_runner",
        kind=Personas,
    ) as personas:
        personas.prompts_file, personas.admin, personas.pirates = prompts_file, admin, pirates
        personas.elsewhere, personas.gated_guild = elsewhere, gated_guild
        personas.gated, personas.gated_other = gated, gated_other
        yield personas


async def everything_stored(redis: Redis) -> str:
    """Every key and value in Redis, as one text to search."""
    return "\n".join([f"{key} {' '.join(await entries(redis, key))}" async for key in redis.scan_iter("*")])


def today() -> str:
    day = datetime.now(UTC).date()
    return f"{day:%A} {day.day} {day:%B %Y}"


# ---- personas ---------------------------------------------------------------------------------------------------


async def test_a_servers_persona_applies_in_that_server_only_with_date_and_server_filled(deployment: Personas) -> None:
    alice = await deployment.opt_in("alice")
    persona = "You are Captain Byte of {server}. Today is {date}. Keep {braces} as written."
    assert "this server's persona" in await deployment.command(deployment.admin, f"!persona set {persona}")

    here = await deployment.asked_prompt(alice, "Hey Llama, who are you?")
    assert f"You are Captain Byte of Fake Guild. Today is {today()}. Keep {{braces}} as written." in here
    assert DEFAULT_PROMPT not in here, "the persona replaces SYSTEM_PROMPT"
    there = await deployment.asked_prompt(alice, "Hey Llama, and here?", channel_id=deployment.elsewhere)
    assert DEFAULT_PROMPT in there and "Captain Byte" not in there, "another server's persona reached this one"
    in_dm = await deployment.asked_prompt(alice, "who are you?", dm=True)
    assert DEFAULT_PROMPT in in_dm and "Captain Byte" not in in_dm


async def test_a_channel_persona_holds_in_that_channel_and_its_threads_only(deployment: Personas) -> None:
    bob, pirates = await deployment.opt_in("bob"), deployment.pirates
    done = await deployment.command(deployment.admin, f"!persona set <#{pirates}> You are a pirate of {{server}}.")
    assert f"persona of <#{pirates}>" in done

    assert "You are a pirate of Fake Guild." in await deployment.asked_prompt(
        bob, "Hey Llama, ahoy?", channel_id=pirates
    )
    elsewhere_here = await deployment.asked_prompt(bob, "Hey Llama, in general?")
    assert "pirate" not in elsewhere_here and "Captain Byte" in elsewhere_here, "the server's persona holds elsewhere"

    own_thread = await deployment.user_thread(bob, pirates)
    in_own = await deployment.asked_prompt(bob, "Hey Llama, in my thread?", channel_id=own_thread)
    assert "You are a pirate of Fake Guild." in in_own, "a thread follows its parent channel's persona"
    shared = await deployment.open_thread(bob, "treasure", pirates)
    in_shared = await deployment.asked_prompt(bob, "where is the gold?", channel_id=shared)
    assert f"You are a pirate of Fake Guild.\n\n{GROUP_CONVERSATION_LINE}" in in_shared, "the group line still applies"

    shown = await deployment.command(bob, "!persona show", channel_id=shared)
    assert f"The persona of <#{pirates}>, which this thread follows" in shown
    assert "You are a pirate of {server}." in shown, "shown as written"


async def test_show_says_where_the_prompt_comes_from_and_reset_falls_back(deployment: Personas) -> None:
    carol, admin, pirates = await deployment.opt_in("carol"), deployment.admin, deployment.pirates
    await deployment.command(admin, f"!persona set <#{pirates}> You are a parrot.")
    assert "This channel's persona" in await deployment.command(carol, "!persona show", channel_id=pirates)
    assert "Done" in await deployment.command(admin, f"!persona reset <#{pirates}>")
    shown = await deployment.command(carol, "!persona show", channel_id=pirates)
    assert "This server's persona" in shown and "Captain Byte" in shown
    parrotless = await deployment.asked_prompt(carol, "Hey Llama, still the bird?", channel_id=pirates)
    assert "You are a parrot." not in parrotless and "Captain Byte" in parrotless
    assert "Done" in await deployment.command(admin, "!persona reset")
    assert "had no persona" in await deployment.command(admin, "!persona reset")
    shown = await deployment.command(carol, "!persona show")
    assert "default system prompt" in shown and DEFAULT_PROMPT in shown
    assert DEFAULT_PROMPT in await deployment.asked_prompt(carol, "Hey Llama, and now?")
    assert "persona" not in await deployment.redis.hgetall(KEYS.server(deployment.fake.guild_id))


async def test_members_are_refused_the_admin_commands_and_a_long_persona_is_refused(deployment: Personas) -> None:
    dave, admin, pirates = await deployment.opt_in("dave"), deployment.admin, deployment.pirates
    before = await deployment.redis.hgetall(KEYS.server(deployment.fake.guild_id))
    for command in (
        "!persona set I am dave's puppet.",
        f"!persona set <#{pirates}> I am dave's puppet.",
        "!persona reset",
        f"!channels allow <#{pirates}>",
        "!channels list",
        "!channels reset",
    ):
        assert await deployment.command(dave, command) == "Only server administrators can use that command."
    too_long = await deployment.command(admin, "!persona set " + "x" * (PERSONA_MAX_CHARS + 1))
    assert f"the most is {PERSONA_MAX_CHARS:,}" in too_long and "Nothing was changed" in too_long
    assert await deployment.redis.hgetall(KEYS.server(deployment.fake.guild_id)) == before
    assert "can't see that channel" in await deployment.command(admin, f"!persona set <#{deployment.gated}> hi")


# ---- where the bot speaks -----------------------------------------------------------------------------------


async def test_with_an_allow_list_the_bot_answers_there_and_hints_once_elsewhere_storing_nothing(
    deployment: Personas,
) -> None:
    fake, admin, gated, allowed = deployment.fake, deployment.admin, deployment.gated, deployment.gated_other
    erin = await deployment.opt_in("erin")
    assert "Done: I answer in" in await deployment.command(admin, f"!channels allow <#{allowed}>", channel_id=gated)
    assert f"only in <#{allowed}>" in await deployment.command(admin, "!channels list", channel_id=gated)

    asked, _ = await deployment.ask(erin, "Hey Llama, in the allowed channel", channel_id=allowed)
    assert asked["id"] in recorded_prompts(deployment.prompts_file), "answered, not hinted"
    outside, hint = await deployment.ask(erin, "Hey Llama, my secret is tamarind", channel_id=gated)
    assert hint["content"] == f"I don't answer in this channel. On this server I answer in <#{allowed}>."
    again = await fake.send_message(erin, "Hey Llama, still here? rambutan", channel_id=gated)
    await deployment.silence(again)
    assert len(replies_to(fake, outside["id"])) == 1, "one hint, no answer after it"

    assert not await deployment.redis.exists(history_key(erin["id"], gated)), "nothing of it is kept"
    stored = await everything_stored(deployment.redis)
    assert not [text for text in ("tamarind", "rambutan", outside["id"], again["id"]) if text in stored]
    assert outside["id"] not in recorded_prompts(deployment.prompts_file), "no job was queued"

    stranger = fake.add_user("frankstranger")
    ignored = await fake.send_message(stranger, "Hey Llama, hello?", channel_id=gated)
    await deployment.silence(ignored)
    assert await keys_and_items_mentioning(deployment.redis, stranger["id"]) == []

    for command in ("!help", "!status"):
        assert (await deployment.ask(erin, command, channel_id=gated))[1]["content"], "commands work everywhere"


async def test_threads_follow_their_parent_channels_access(deployment: Personas) -> None:
    fake, gated, allowed = deployment.fake, deployment.gated, deployment.gated_other
    grace = await deployment.opt_in("grace")
    in_allowed = await deployment.user_thread(grace, allowed)
    asked, _ = await deployment.ask(grace, "Hey Llama, in a thread of the allowed channel", channel_id=in_allowed)
    assert asked["id"] in recorded_prompts(deployment.prompts_file), "answered, not hinted"
    in_gated = await deployment.user_thread(grace, gated)
    _, hint = await deployment.ask(grace, "Hey Llama, in a thread of the other", channel_id=in_gated)
    assert hint["content"].startswith("I don't answer in this channel.")
    assert fake.thread(in_gated)["parent_id"] == gated
    threads_before = len(fake.threads)
    assert "I don't answer in this channel" in await deployment.command(grace, "!chat silence", channel_id=gated)
    assert len(fake.threads) == threads_before, "no thread where the bot would not answer"


async def test_deny_and_reset_bring_the_bot_back_and_optout_erases_the_hint_marker(deployment: Personas) -> None:
    admin, gated, allowed, guild = deployment.admin, deployment.gated, deployment.gated_other, deployment.gated_guild
    heidi = await deployment.opt_in("heidi")
    _, hint = await deployment.ask(heidi, "Hey Llama, hello", channel_id=gated)
    assert hint["content"].startswith("I don't answer")
    assert await deployment.redis.exists(KEYS.hinted(heidi["id"]))
    assert "erased" in await deployment.command(heidi, "!optout", channel_id=gated), "!optout works everywhere"
    assert await keys_and_items_mentioning(deployment.redis, heidi["id"]) == []

    assert "Done: I answer in" in await deployment.command(admin, f"!channels allow <#{gated}>", channel_id=gated)
    assert "1 channel still allowed" in await deployment.command(
        admin, f"!channels deny <#{allowed}>", channel_id=gated
    )
    ivan = await deployment.opt_in("ivan")
    _, hint = await deployment.ask(ivan, "Hey Llama, over there?", channel_id=allowed)
    assert hint["content"] == f"I don't answer in this channel. On this server I answer in <#{gated}>."
    assert "answer in every channel again" in await deployment.command(admin, "!channels reset", channel_id=gated)
    assert "every channel" in await deployment.command(admin, "!channels list", channel_id=gated)
    assert await deployment.redis.hgetall(KEYS.server(guild)) == {}
    message, _ = await deployment.ask(ivan, "Hey Llama, and now?", channel_id=allowed)
    assert message["id"] in recorded_prompts(deployment.prompts_file)


async def test_dms_are_answered_with_allow_dms_on_and_hinted_once_with_it_off(deployment: Personas) -> None:
    fake, system = deployment.fake, deployment.system
    judy = await deployment.opt_in("judy")
    asked, _ = await deployment.ask(judy, "are DMs answered?", dm=True)
    assert asked["id"] in recorded_prompts(deployment.prompts_file)

    [bot] = [p for p in system.processes if p.name.startswith("bot")]
    bot.popen.terminate()
    assert await asyncio.to_thread(bot.popen.wait, 30) == 0
    identified = fake.identify_count
    system.start("bot", ALLOW_DMS="false")
    await fake.wait_identified(timeout=60, count=identified + 1)
    refused, hint = await deployment.ask(judy, "my DM secret is kumquat", dm=True)
    assert "don't answer direct messages" in hint["content"]
    again = await fake.send_message(judy, "still no? persimmon", dm=True)
    await deployment.silence(again)
    assert refused["id"] not in recorded_prompts(deployment.prompts_file)
    stored = await everything_stored(deployment.redis)
    assert not [text for text in ("kumquat", "persimmon", refused["id"], again["id"]) if text in stored]
    assert "opted in" in (await deployment.ask(judy, "!optin", dm=True))[1]["content"], "commands still work in DMs"


async def test_ask_follows_the_persona_in_force_and_is_refused_privately_where_the_bot_does_not_answer(
    deployment: Personas,
) -> None:
    fake, admin, pirates = deployment.fake, deployment.admin, deployment.pirates
    asker = await deployment.opt_in("asker")
    persona = "Speak like a sailor of {server}."
    said = await deployment.command(admin, f"!persona set <#{pirates}> {persona}", channel_id=pirates)
    assert "Done" in said
    try:
        handle = await fake.invoke_command(asker, "ask", {"question": "ahoy?"}, channel_id=pirates)
        await handle.wait_until(lambda h: bool(h.original and h.original["content"]), what="an answer", timeout=60)
        prompt = deployment.prompt_of({"id": handle.id})
        assert "Speak like a sailor of Fake Guild." in prompt and DEFAULT_PROMPT not in prompt
    finally:
        await deployment.command(admin, f"!persona reset <#{pirates}>", channel_id=pirates)
    gated, allowed = deployment.gated, deployment.gated_other
    assert "Done" in await deployment.command(admin, f"!channels allow <#{allowed}>", channel_id=gated)
    try:
        refused = await fake.invoke_command(asker, "ask", {"question": "here?"}, channel_id=gated)
        await refused.wait_until(lambda h: bool(h.followups), what="a private refusal", timeout=30)
        [refusal] = refused.followups
        assert refusal["content"].startswith("I don't answer in this channel") and refusal["flags"] & 64
        assert not await deployment.redis.exists(KEYS.inflight(asker["id"]))
        assert handle.id in recorded_prompts(deployment.prompts_file)
        assert refused.id not in recorded_prompts(deployment.prompts_file)
    finally:
        await deployment.command(admin, "!channels reset", channel_id=gated)
