"""Personas and where the bot speaks, against a real Redis: storage, the one read that routes a message, the Lua
scripts of the allow-list and of the hourly hint, placeholders, and what the runner puts in a job's prompt."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from redis.asyncio import Redis

from runner.conversation import GROUP_CONVERSATION_LINE, model_view, system_prompt_for
from shared.queues.schemas import Job
from shared.queues.served_models import LiveModels
from shared.storage.keys import Keys
from shared.stores.channel_access import HINT_INTERVAL_S, ChannelAccess, access_fields, may_speak
from shared.stores.consent import ConsentRegistry
from shared.stores.model_choice import ModelChoices
from shared.stores.personas import PERSONA_MAX_CHARS, Personas, fill_placeholders, persona_fields, persona_in_force
from shared.stores.places import Place

GUILD, OTHER_GUILD = "800", "900"
GENERAL, RANDOM, THREAD = "11", "12", "13"
ALICE = "42"
IN_GENERAL = Place(GUILD, GENERAL, guild_name="Llama Club")
IN_RANDOM = Place(GUILD, RANDOM, guild_name="Llama Club")
IN_THREAD = Place(GUILD, THREAD, GENERAL, guild_name="Llama Club")
IN_DM = Place(None, "77")


async def test_the_nearest_persona_applies_and_resetting_falls_back(redis: Redis, keys: Keys) -> None:
    personas = Personas(redis, keys)
    assert (await personas.in_force(IN_GENERAL)).source == "default"
    await personas.set(GUILD, None, "You are the server's butler.")
    await personas.set(GUILD, GENERAL, "You are a pirate.")
    general, thread, other = [await personas.in_force(p) for p in (IN_GENERAL, IN_THREAD, IN_RANDOM)]
    assert (general.text, general.source, general.channel_id) == ("You are a pirate.", "channel", GENERAL)
    assert (thread.text, thread.source, thread.channel_id) == ("You are a pirate.", "parent", GENERAL)
    assert (other.text, other.source) == ("You are the server's butler.", "server")
    assert (await personas.in_force(Place(OTHER_GUILD, GENERAL))).source == "default", "one server's stays there"
    assert (await personas.in_force(IN_DM)).source == "default", "a DM has no server"

    assert await personas.reset(GUILD, GENERAL)
    assert not await personas.reset(GUILD, GENERAL), "nothing left to reset"
    assert (await personas.in_force(IN_THREAD)).source == "server"
    assert await personas.reset(GUILD, None)
    assert (await personas.in_force(IN_GENERAL)).source == "default"


async def test_a_persona_over_the_limit_is_refused(redis: Redis, keys: Keys) -> None:
    personas = Personas(redis, keys)
    await personas.set(GUILD, None, "x" * PERSONA_MAX_CHARS)
    with pytest.raises(ValueError, match=str(PERSONA_MAX_CHARS)):
        await personas.set(GUILD, GENERAL, "x" * (PERSONA_MAX_CHARS + 1))
    assert await redis.hkeys(keys.server(GUILD)) == ["persona"]


async def test_routing_reads_persona_and_access_in_the_same_round_trip(redis: Redis, keys: Keys) -> None:
    """What the bot reads before queueing a message: one pipelined round trip gives model, persona and access."""
    choices = ModelChoices(redis, keys, LiveModels(redis, keys), bot_default="alpha")
    await choices.set_server_default(GUILD, "beta")
    await Personas(redis, keys).set(GUILD, GENERAL, "You are a pirate.")
    await ChannelAccess(redis, keys, allow_dms=True).allow(GUILD, RANDOM)
    fields = [*persona_fields(IN_THREAD), *access_fields(IN_THREAD)]
    await choices.live.cached()  # read at most once a second, whatever the messages
    commands: list[object] = []
    original = redis.connection_pool.get_connection

    async def counting(*args: object, **kwargs: object) -> object:
        commands.append(args)
        return await original(*args, **kwargs)  # type: ignore[arg-type]

    redis.connection_pool.get_connection = counting  # type: ignore[method-assign,assignment]
    try:
        route, values = await choices.route_reading(ALICE, GUILD, fields)
    finally:
        redis.connection_pool.get_connection = original  # type: ignore[method-assign]
    assert len(commands) == 1, "one pipeline: the choice, the server's default, personas and allow-list"
    assert route.model == "beta"
    assert persona_in_force(values, IN_THREAD).text == "You are a pirate."
    assert not may_speak(values, IN_THREAD, allow_dms=True), "general is not on the allow-list"


async def test_allow_deny_list_and_reset_keep_the_allow_list_and_its_count_together(redis: Redis, keys: Keys) -> None:
    access = ChannelAccess(redis, keys, allow_dms=True)
    assert await access.may_speak(IN_GENERAL) and await access.may_speak(IN_THREAD), "no allow-list: everywhere"
    assert await access.allow(GUILD, RANDOM)
    assert not await access.allow(GUILD, RANDOM), "already allowed"
    assert await access.allow(GUILD, GENERAL)
    assert await access.allowed(GUILD) == [GENERAL, RANDOM]
    assert await access.may_speak(IN_THREAD), "a thread follows its channel"
    assert await access.deny(GUILD, GENERAL) == (True, 1)
    assert not await access.may_speak(IN_GENERAL) and not await access.may_speak(IN_THREAD)
    assert await access.may_speak(IN_RANDOM)
    assert await access.may_speak(Place(OTHER_GUILD, GENERAL)), "another server's list does not hold here"
    assert await access.deny(GUILD, GENERAL) == (False, 1)
    assert await access.deny(GUILD, RANDOM) == (True, 0)
    assert await redis.hkeys(keys.server(GUILD)) == [], "the last one leaves no count behind"
    assert await access.may_speak(IN_GENERAL), "an emptied list means everywhere again"
    await access.allow(GUILD, RANDOM)
    await access.allow(GUILD, GENERAL)
    await Personas(redis, keys).set(GUILD, GENERAL, "You are a pirate.")
    assert await access.reset(GUILD) == 2
    assert await redis.hkeys(keys.server(GUILD)) == ["persona:11"], "a reset leaves the personas alone"
    assert await access.may_speak(IN_GENERAL)


async def test_dms_follow_allow_dms(redis: Redis, keys: Keys) -> None:
    assert await ChannelAccess(redis, keys, allow_dms=True).may_speak(IN_DM)
    assert not await ChannelAccess(redis, keys, allow_dms=False).may_speak(IN_DM)


async def test_the_hint_comes_once_an_hour_per_channel_to_opted_in_people_only(redis: Redis, keys: Keys) -> None:
    access = ChannelAccess(redis, keys, allow_dms=False)
    await access.allow(GUILD, RANDOM)
    assert await access.hint_due(ALICE, IN_GENERAL, now=1000.0) is None, "not opted in: nothing said"
    assert await redis.keys("*hinted*") == [], "nor stored"
    await ConsentRegistry(redis, keys).opt_in(ALICE)
    assert await access.hint_due(ALICE, IN_GENERAL, now=1000.0) == [RANDOM]
    assert await access.hint_due(ALICE, IN_GENERAL, now=1000.0 + HINT_INTERVAL_S - 1) is None
    assert await access.hint_due(ALICE, IN_THREAD, now=1001.0) == [RANDOM], "a thread is a channel of its own"
    assert await access.hint_due(ALICE, IN_DM, now=1001.0) == []
    assert 0 < await redis.ttl(keys.hinted(ALICE)) <= HINT_INTERVAL_S
    assert await access.hint_due(ALICE, IN_GENERAL, now=1000.0 + HINT_INTERVAL_S + 1) == [RANDOM], "an hour later"


async def test_optout_erases_the_hint_marker(redis: Redis, keys: Keys) -> None:
    consent = ConsentRegistry(redis, keys)
    await consent.opt_in(ALICE)
    access = ChannelAccess(redis, keys, allow_dms=False)
    assert await access.hint_due(ALICE, IN_DM) == []
    assert await redis.exists(keys.hinted(ALICE))
    assert await consent.opt_out(ALICE)
    assert await redis.keys("*") == []


def test_only_date_and_server_are_filled_in_one_pass() -> None:
    today = date(2026, 12, 3)
    filled = fill_placeholders("{server} on {date}; {name} {} {{date}} {Date}", today=today, server="{date} club")
    assert filled == "{date} club on Thursday 3 December 2026; {name} {} {Thursday 3 December 2026} {Date}"
    assert fill_placeholders("in {server}", today=today, server=None) == "in {server}"


def job(**extra: object) -> Job:
    base: Job = {
        "id": "1",
        "user_id": ALICE,
        "channel_id": GENERAL,
        "guild_id": GUILD,
        "content": "hi",
        "enqueued_at": 0.0,
        "attempts": 0,
    }
    return {**base, **extra}  # type: ignore[typeddict-item]


def test_the_runner_uses_the_jobs_persona_filled_at_answer_time_else_its_own() -> None:
    now = datetime(2026, 12, 3, 23, 30, tzinfo=UTC)
    persona = job(system_prompt="Pirate of {server}, {date}.", server_name="Llama Club")
    assert system_prompt_for(persona, "DEFAULT", now) == "Pirate of Llama Club, Thursday 3 December 2026."
    assert system_prompt_for(job(), "DEFAULT", now) == "DEFAULT"
    shared = job(system_prompt="Pirate.", conversation="thread:5", lane="thread:5", author_name="bob")
    prompt, _, message = model_view(shared, [], "DEFAULT")
    assert prompt == f"Pirate.\n\n{GROUP_CONVERSATION_LINE}", "a shared thread's group line still applies"
    assert message == "bob: hi"
