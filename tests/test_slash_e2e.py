"""Slash commands through the real processes: each `!` command as `/name` with a private answer, the tree synced at
start only when it changed, operator commands hidden and refused, and `/ask` answered through its interaction
(deferred first even while Redis stalls, streamed into @original, continued in follow-ups, posted in the channel once
the token is gone), with its token erased by opt-out and never logged."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from bot import texts
from shared.queues.conversation_ids import private_conversation
from tests.e2e_support import keys_and_items_mentioning, keys_holding, wait_reply
from tests.fake_discord.interactions import InteractionHandle
from tests.fake_discord.state import Payload
from tests.fault_support import KEYS, Cluster, running_cluster
from tests.redis_server import RedisServer
from updater.rendering import STREAMING_MARKER

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]

MODEL_NAME = "parrot"
ECHO = "echo:1.0"
"""Each answer takes 1 s, its words appearing step by step (streamed every 0.25 s)."""
COMMANDS = [
    "persona",
    "channels",
    "access",
    "optin",
    "optout",
    "forget",
    "help",
    "status",
    "models",
    "stats",
    "dead",
    "chat",
    "model",
    "model-default",
    "replay",
    "ask",
]
EPHEMERAL = 64
FOLLOW_UP_ROUTE = r"/webhooks/\d+/[^/]+"


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with running_cluster(
        redis_server, tmp_path_factory.mktemp("slash"), model=ECHO, STREAM_INTERVAL_S="0.25", MODEL_NAME=MODEL_NAME
    ) as running:
        # The bot syncs in setup_hook, before it identifies; commands must be there before anyone runs one.
        deadline = time.monotonic() + 30
        while not running.fake.command_syncs:
            assert time.monotonic() < deadline, "the bot did not sync its commands"
            await asyncio.sleep(0.05)
        yield running
        check_no_token_logged(running)


def check_no_token_logged(cluster: Cluster) -> None:
    logs = cluster.system.logs()
    for handle in cluster.fake.interactions:
        assert handle.token not in logs, f"the token of interaction {handle.id} (/{handle.name}) was logged"


async def private_answer(
    cluster: Cluster, user: Payload, name: str, options: dict[str, object] | None = None, **kwargs: object
) -> str:
    """Runs /name and returns its answer, checking that only the user sees it."""
    handle = await cluster.fake.invoke_command(user, name, options or {}, **kwargs)  # type: ignore[arg-type]
    await handle.wait_until(lambda h: bool(h.original and h.original["content"]), what="an answer", timeout=30)
    assert handle.callback is not None and handle.callback["after_s"] < 3.0
    assert handle.ephemeral, f"/{name}'s answer is public"
    assert handle.original is not None
    return str(handle.original["content"])


async def redis_holds(redis: Redis, secret: str) -> list[str]:
    """Every key whose name or value holds `secret`."""
    found = []
    async for key in redis.scan_iter("*"):
        kind = await redis.type(key)
        if kind == "list":
            values = await redis.lrange(key, 0, -1)
        elif kind == "hash":
            values = [f"{k}={v}" for k, v in (await redis.hgetall(key)).items()]
        elif kind == "set":
            values = list(await redis.smembers(key))
        elif kind == "zset":
            values = await redis.zrange(key, 0, -1)
        else:
            values = [await redis.get(key) or ""]
        if secret in key or any(secret in value for value in values):
            found.append(key)
    return found


def shown(cluster: Cluster, handle: InteractionHandle) -> list[str]:
    """What @original and the follow-ups show now (parts are cut at a space, which neither keeps)."""
    parts = [handle.original["content"] if handle.original else ""]
    return parts + [cluster.fake.message(f["id"])["content"] for f in handle.followups]


async def answered(cluster: Cluster, handle: InteractionHandle, text: str, timeout: float = 30.0) -> None:
    """Waits until @original and the follow-ups together show `text`, streaming marker gone."""
    await handle.wait_until(
        lambda h: " ".join(shown(cluster, h)).split() == text.split(),
        what=f"the answer {text[:40]!r}…",
        timeout=timeout,
    )


async def test_the_commands_are_synced_once_and_not_again_after_a_restart_when_unchanged(cluster: Cluster) -> None:
    fake = cluster.fake
    assert [(scope, sorted(names)) for scope, names in fake.command_syncs] == [("global", sorted(COMMANDS))]
    stored = {c["name"]: c for c in fake.registered_commands()}
    assert {name for name, c in stored.items() if c["default_member_permissions"] == str(1 << 3)} == {
        "stats",
        "dead",
        "replay",
        "model-default",
        "channels",
        "access",
    }
    assert all(option.get("autocomplete") for option in stored["model"]["options"])
    [bot] = cluster.alive("bot")
    bot.popen.send_signal(signal.SIGTERM)
    await asyncio.to_thread(bot.popen.wait, 30)
    restarted = cluster.start("bot")
    await cluster.system.wait_for_log(restarted, "slash commands unchanged in scope global", timeout=60)
    await fake.wait_identified(count=2, timeout=60)
    assert len(fake.command_syncs) == 1


async def test_a_server_list_syncs_there_instead(cluster: Cluster) -> None:
    fake = cluster.fake
    [bot] = cluster.alive("bot")
    bot.popen.send_signal(signal.SIGTERM)
    await asyncio.to_thread(bot.popen.wait, 30)
    restarted = cluster.start("bot", COMMAND_GUILD_IDS=fake.guild_id)
    await cluster.system.wait_for_log(restarted, f"slash commands to scope {fake.guild_id}", timeout=60)
    assert fake.command_syncs[-1][0] == fake.guild_id
    assert sorted(c["name"] for c in fake.registered_commands(fake.guild_id)) == sorted(COMMANDS)
    await fake.wait_identified(count=3, timeout=60)


async def test_every_command_answers_privately_with_what_its_bang_twin_says(cluster: Cluster) -> None:
    fake = cluster.fake
    user = fake.add_user("sam")
    assert "You're opted in." in await private_answer(cluster, user, "optin")
    assert await cluster.redis.sismember(KEYS.optin, user["id"])
    assert "Hi! I'm a chat bot" in await private_answer(cluster, user, "help")
    assert "Nothing of yours is waiting" in await private_answer(cluster, user, "status")
    assert f"`{MODEL_NAME}`" in await private_answer(cluster, user, "models")
    assert f"answered by `{MODEL_NAME}`" in await private_answer(cluster, user, "model")
    assert "Done: `parrot` answers you" in await private_answer(cluster, user, "model", {"name": MODEL_NAME})
    assert await cluster.redis.get(KEYS.choice(user["id"])) == MODEL_NAME
    assert "No model called `nope`" in await private_answer(cluster, user, "model", {"name": "nope"})
    opened = await private_answer(cluster, user, "chat", {"topic": "llamas"})
    [thread] = [t for t in fake.threads if t["name"] == "llamas"]
    assert opened.startswith(f"I've opened <#{thread['id']}>")
    assert await cluster.redis.exists(KEYS.thread(str(thread["id"])))
    await fake.wait_for_posts(1, channel_id=str(thread["id"]))  # the greeting, in the thread
    assert "there was no conversation stored to forget" in await private_answer(cluster, user, "forget")
    assert "You're opted out" in await private_answer(cluster, user, "optout")
    assert "You weren't opted in" in await private_answer(cluster, user, "optout", dm=True)
    assert await keys_and_items_mentioning(cluster.redis, user["id"]) == []


async def test_model_autocomplete_offers_the_served_models(cluster: Cluster) -> None:
    handle = await cluster.fake.invoke_autocomplete(cluster.fake.add_user("ada"), "model", "name", "par")
    await handle.wait_responded(timeout=10)
    assert handle.choices == [{"name": MODEL_NAME, "value": MODEL_NAME}]
    handle = await cluster.fake.invoke_autocomplete(cluster.fake.add_user("bo"), "model", "name", "zzz")
    await handle.wait_responded(timeout=10)
    assert handle.choices == []


async def test_operator_commands_are_hidden_from_members_and_refused_when_run_anyway(cluster: Cluster) -> None:
    fake = cluster.fake
    member = fake.add_user("member")
    for name in ("stats", "dead", "replay", "model-default"):
        with pytest.raises(PermissionError):
            await fake.invoke_command(member, name, {"id": "1"} if name == "replay" else {})
    # In a DM Discord offers every command; the bot checks again (ADMIN_USER_IDS only there).
    assert "Only server administrators" in await private_answer(cluster, member, "stats", dm=True)
    assert "Queue:" in await private_answer(cluster, fake.add_user("boss"), "stats", admin=True)
    assert "No failed messages." in await private_answer(cluster, fake.add_user("boss2"), "dead", admin=True)
    set_default = await private_answer(
        cluster, fake.add_user("boss3"), "model-default", {"name": MODEL_NAME}, admin=True
    )
    assert f"`{MODEL_NAME}` is now this server's default" in set_default


async def test_persona_and_channels_run_their_bang_twins_privately_and_channels_is_hidden_from_members(
    cluster: Cluster,
) -> None:
    fake, here = cluster.fake, cluster.fake.channel_id
    boss, member = fake.add_user("persona-boss"), fake.add_user("persona-member")
    persona = "You are a pirate on {server}."

    async def run(user: Payload, name: str, sub: str, options: dict[str, object] | None = None, **kw: object) -> str:
        return await private_answer(cluster, user, name, options, subcommand=sub, **kw)

    assert "that is now this server's persona" in await run(boss, "persona", "set", {"text": persona}, admin=True)
    shown_here = await run(member, "persona", "show")
    assert "This server's persona" in shown_here and persona in shown_here
    assert await run(member, "persona", "set", {"text": "You are a cat."}) == texts.ADMINS_ONLY
    set_here = await run(boss, "persona", "set", {"text": "Channel voice.", "channel": here}, admin=True)
    assert f"the persona of <#{here}>" in set_here
    assert "Channel voice." in await run(member, "persona", "show")
    assert "has no persona of its own any more" in await run(boss, "persona", "reset", {"channel": here}, admin=True)
    assert "has no persona of its own any more" in await run(boss, "persona", "reset", admin=True)
    assert "The default system prompt" in await run(member, "persona", "show")
    with pytest.raises(PermissionError):
        await fake.invoke_command(member, "channels", {}, subcommand="list")
    assert f"Done: I answer in <#{here}>" in await run(boss, "channels", "allow", {"channel": here}, admin=True)
    assert f"I answer only in <#{here}>" in await run(boss, "channels", "list", admin=True)
    assert "the allow-list (1 channel) is gone" in await run(boss, "channels", "reset", admin=True)


async def test_ask_streams_into_the_original_response_and_continues_in_a_follow_up(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["long"])
    words = " ".join(f"word{i}" for i in range(400))  # about 3,100 characters: two parts
    handle = await fake.invoke_command(user, "ask", {"question": words})
    await answered(cluster, handle, f"echo: {words}")
    assert handle.deferred and not handle.ephemeral and handle.callback is not None
    assert handle.callback["after_s"] < 3.0
    history = handle.original_history
    assert history[0] == "" and len(history) >= 3, history  # thinking, then growing text
    assert any(version.endswith(STREAMING_MARKER) for version in history[1:-1])
    assert not history[-1].endswith(STREAMING_MARKER)
    [follow_up] = handle.followups
    assert follow_up["flags"] == 0 and follow_up["content"]
    assert not [p for p in fake.posted if p["content"].startswith("echo")]  # nothing posted outside the interaction
    turns = await cluster.redis.get(KEYS.history(private_conversation(fake.channel_id, user["id"])))
    assert turns is not None and words in turns
    await cluster.wait_drained(timeout=10)


async def test_ask_is_deferred_within_three_seconds_while_redis_stalls(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["patient"])
    side = Redis.from_url(cluster.server.url, decode_responses=True)
    try:
        await side.execute_command("CLIENT", "PAUSE", "4000", "ALL")  # every other client waits 4 s
        started = time.monotonic()
        handle = await fake.invoke_command(user, "ask", {"question": "are you there"})
        await handle.wait_responded(timeout=10)
        assert time.monotonic() - started < 3.0
    finally:
        await side.aclose()
    assert handle.callback is not None and handle.callback["after_s"] < 3.0 and handle.deferred
    await answered(cluster, handle, "echo: are you there", timeout=30)


async def test_ask_by_someone_not_opted_in_gets_a_private_hint_and_nothing_is_stored(cluster: Cluster) -> None:
    fake = cluster.fake
    stranger = fake.add_user("stranger")
    handle = await fake.invoke_command(stranger, "ask", {"question": "who are you"})
    await handle.wait_followups(1, timeout=15)
    assert handle.original is None  # the public "thinking…" was removed
    [hint] = handle.followups
    assert hint["flags"] == EPHEMERAL and "/optin" in hint["content"]
    assert await keys_and_items_mentioning(cluster.redis, stranger["id"]) == []
    assert await redis_holds(cluster.redis, handle.token) == []


async def test_an_answer_after_the_token_expired_is_posted_in_the_channel_mentioning_nobody(
    cluster: Cluster,
) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["late"])
    fake.interaction_token_ttl_s = 0.3  # the echo takes 1 s
    try:
        handle = await fake.invoke_command(user, "ask", {"question": f"ping <@{user['id']}> @everyone"})
        [post] = await fake.wait_for_posts(1, channel_id=fake.channel_id, timeout=30)
        while not post["content"].startswith("echo"):
            await asyncio.sleep(0.05)
            post = fake.message(post["id"])
    finally:
        fake.interaction_token_ttl_s = 900.0
    await cluster.wait_drained(timeout=10)
    [post] = [p for p in fake.posted if "ping" in p["content"]]
    assert post["content"] == f"echo: ping <@{user['id']}> @everyone"
    assert post["_request"]["allowed_mentions"] == {"parse": []}
    assert post["mentions"] == [] and not post["mention_everyone"]
    assert str(post["_request"]["message_reference"]["message_id"]) == handle.original_id  # after "thinking…"
    assert 50027 in handle.refusals


async def test_opting_out_erases_waiting_asks_and_their_tokens(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["quitter"])
    [runner] = cluster.alive("runner")
    cluster.pause(runner)  # the first /ask is claimed (Redis moves it), the others wait in the user's lane
    try:
        handles = [await fake.invoke_command(user, "ask", {"question": f"question {i}"}) for i in range(3)]
        deadline = time.monotonic() + 15
        while await cluster.redis.llen(KEYS.pending(user["id"])) < 2:
            assert time.monotonic() < deadline, "the asks did not queue"
            await asyncio.sleep(0.05)
        assert "You're opted out" in await private_answer(cluster, user, "optout")
    finally:
        cluster.resume(runner)
    await cluster.wait_drained(timeout=20)
    await asyncio.sleep(1.5)  # the claimed one completes and is dropped: its user is gone
    assert await keys_and_items_mentioning(cluster.redis, user["id"]) == []
    for handle in handles:
        assert await redis_holds(cluster.redis, handle.token) == []
        assert handle.followups == [] and (handle.original or {}).get("content", "") == ""


async def test_an_updater_killed_after_discord_created_a_follow_up_does_not_post_it_twice(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["twice"])
    [victim] = cluster.alive("updater")
    hold = fake.hold_next("POST", FOLLOW_UP_ROUTE)
    words = " ".join(f"item{i}" for i in range(400))
    handle = await fake.invoke_command(user, "ask", {"question": words})
    await asyncio.wait_for(hold.arrived.wait(), 30)
    assert len(handle.followups) == 1  # Discord has it; the updater has not heard back
    cluster.kill(victim)
    hold.release()
    await cluster.start_updater()
    await answered(cluster, handle, f"echo: {words}", timeout=30)
    await cluster.wait_drained(timeout=15)
    assert len(handle.followups) == 1


async def test_opting_out_mid_stream_deletes_the_partial_answer_and_keeps_nothing(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["midway"])
    [runner] = cluster.alive("runner")
    handle = await fake.invoke_command(user, "ask", {"question": " ".join(f"w{i}" for i in range(40))})
    await handle.wait_until(lambda h: len(h.original_history) >= 2, what="a partial answer")
    cluster.pause(runner)  # the answer cannot finish before the opt-out
    try:
        assert "You're opted out" in await private_answer(cluster, user, "optout")
    finally:
        cluster.resume(runner)
    await handle.wait_until(lambda h: h.original is None, what="the partial answer deleted")
    await cluster.wait_drained(timeout=15)
    assert handle.followups == []
    assert await keys_and_items_mentioning(cluster.redis, user["id"]) == []
    assert await redis_holds(cluster.redis, handle.token) == []


async def test_forget_while_an_ask_is_answered_keeps_nothing_of_it(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["forgetful"])
    await answered(cluster, await fake.invoke_command(user, "ask", {"question": "slashkept"}), "echo: slashkept")
    words = " ".join(f"slashasked{i}" for i in range(40))
    [runner] = cluster.alive("runner")
    handle = await fake.invoke_command(user, "ask", {"question": words})
    await handle.wait_until(lambda h: len(h.original_history) >= 2, what="a partial answer")
    cluster.pause(runner)  # the answer cannot finish before the forget
    try:
        assert "I've forgotten our conversations" in await private_answer(cluster, user, "forget")
    finally:
        cluster.resume(runner)
    await answered(cluster, handle, f"echo: {words}")
    await cluster.wait_drained(timeout=15)
    conversation = private_conversation(fake.channel_id, user["id"])
    assert not await cluster.redis.exists(KEYS.history(conversation), KEYS.conversations(user["id"]))
    for word in ("slashkept", "slashasked"):
        assert await keys_holding(cluster.redis, word) == [], f"{word}: stored after the forget"


def logged_at(log: str, text: str) -> datetime:
    """When the first log line holding `text` was written (the logs' own timestamps)."""
    line = next(line for line in log.splitlines() if text in line)
    return datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")


async def test_an_ask_waits_behind_the_users_earlier_message_and_joins_the_same_conversation(cluster: Cluster) -> None:
    fake = cluster.fake
    [user] = await cluster.opt_in(["orderly"])
    message = await fake.send_message(user, "Hey Llama, first")
    # The message is queued (in flight for a second: echo:1.0) before the /ask is sent: a gateway message and an
    # interaction sent a moment apart may reach Redis in either order, and only Redis order is promised.
    deadline = time.monotonic() + 30
    while await cluster.redis.get(KEYS.inflight(user["id"])) != message["id"]:
        assert time.monotonic() < deadline, "the message was not queued"
        await asyncio.sleep(0.01)
    handle = await fake.invoke_command(user, "ask", {"question": "second"})
    await answered(cluster, handle, "echo: second")
    # One lane: the /ask waited for the message before it, and both exchanges are one conversation, in order.
    raw = await cluster.redis.get(KEYS.history(private_conversation(fake.channel_id, user["id"])))
    turns = [turn["content"] for turn in json.loads(raw or "[]")]
    assert turns == ["first", "echo: first", "second", "echo: second"]
    reply = await wait_reply(fake, message["id"])
    assert fake.message(reply["id"])["content"] == "echo: first"
    [runner] = cluster.alive("runner")
    log = runner.log()
    # By the log's clock: the runner may log its claim of the /ask a moment before it logs having completed the
    # message (both follow the one completion script); a /ask that did not wait is claimed a whole echo earlier.
    answered_first = logged_at(log, f"job {message['id']} of user {user['id']} answered")
    claimed_ask = logged_at(log, f"job {handle.id} of user {user['id']} claimed")
    assert claimed_ask >= answered_first - timedelta(seconds=0.3), "the /ask did not wait"


async def test_ask_works_in_a_dm(cluster: Cluster) -> None:
    [user] = await cluster.opt_in(["private"])
    handle = await cluster.fake.invoke_command(user, "ask", {"question": "just us"}, dm=True)
    await answered(cluster, handle, "echo: just us")
    assert not handle.ephemeral and handle.guild_id is None


async def test_a_failed_sync_stores_no_digest_and_is_retried_at_the_next_start(cluster: Cluster) -> None:
    fake, key = cluster.fake, KEYS.commands_synced(cluster.fake.guild_id)

    async def restart(expected: str) -> None:
        for bot in cluster.alive("bot"):
            bot.popen.send_signal(signal.SIGTERM)
            await asyncio.to_thread(bot.popen.wait, 30)
        restarted = cluster.start("bot", COMMAND_GUILD_IDS=fake.guild_id)
        await cluster.system.wait_for_log(restarted, expected, timeout=60)

    await cluster.redis.delete(key)  # as if the commands had changed
    fake.fail_next("PUT", r"/applications/\d+/guilds/\d+/commands", 403)
    await restart(f"could not sync the slash commands to scope {fake.guild_id}")
    assert not await cluster.redis.exists(key)
    await restart(f"synced {len(COMMANDS)} slash commands to scope {fake.guild_id}")
    assert await cluster.redis.exists(key)
