"""Choosing models through the real processes: a tiny model and an echo engine served under two names, `!models`,
`!model`, a server's default, shared threads, opt-out, and a model whose last runner stops while a message waits."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from shared.storage.keys import Keys
from tests.e2e_support import Deployment, keys_and_items_mentioning, replies_to, running_deployment, wait_reply
from tests.fake_discord import FakeDiscord
from tests.fake_discord.state import Payload
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
KEYS = Keys()
TINY, PARROT, SLOWPOKE = "tiny", "parrot", "slowpoke"
"""The tiny model (DEFAULT_MODEL), an echo engine, and an echo engine that takes 3 s per answer."""


class Models(Deployment):
    admin: Payload
    other_guild_channel: str


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def deployment(
    redis_server: RedisServer, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Models]:
    fake = FakeDiscord()
    other_guild = fake.add_guild("elsewhere")
    admin = fake.add_user("operator")
    async with running_deployment(
        fake,
        redis_server.url,
        str(tiny_model_dir),
        tmp_path_factory.mktemp("models"),
        env={"ADMIN_USER_IDS": admin["id"], "DEFAULT_MODEL": TINY},
        runners=[{"MODEL_NAME": TINY}, {"MODEL": "echo", "MODEL_NAME": PARROT}],
        kind=Models,
    ) as models:
        models.admin, models.other_guild_channel = admin, fake.guild_channel(other_guild)
        yield models


def by_parrot(reply: Payload) -> bool:
    """Whether the echo engine wrote the answer (the tiny model writes random words)."""
    return str(reply["content"]).startswith("echo:")


async def test_models_lists_the_models_served_with_their_runners_and_marks_choice_and_default(
    deployment: Models,
) -> None:
    alice = await deployment.opt_in("alice")
    listed = await deployment.command(alice, "!models")
    assert f"`{PARROT}`: 1 runner\n" in listed and f"`{TINY}`: 1 runner (the default)" in listed
    assert "your choice" not in listed
    assert "Done" in await deployment.command(alice, f"!model {PARROT}")
    listed = await deployment.command(alice, "!models")
    assert f"`{PARROT}`: 1 runner (your choice)" in listed


async def test_a_user_chooses_a_model_and_their_messages_go_to_it(deployment: Models) -> None:
    bob = await deployment.opt_in("bob")
    _, answer = await deployment.ask(bob, "Hey Llama, who answers me?")
    assert not by_parrot(answer), "DEFAULT_MODEL answers whoever chose none"
    assert f"`{TINY}`, the default" in await deployment.command(bob, "!model")
    assert f"`{PARROT}` answers you from now on" in await deployment.command(bob, f"!model {PARROT.upper()}")
    _, answer = await deployment.ask(bob, "Hey Llama, and now?")
    assert answer["content"] == "echo: and now?"
    assert f"answered by `{PARROT}`, your choice" in await deployment.command(bob, "!model")


async def test_a_model_nobody_serves_is_refused_with_the_ones_served(deployment: Models) -> None:
    carol = await deployment.opt_in("carol")
    refusal = await deployment.command(carol, "!model gpt-9")
    assert refusal == f"No model called `gpt-9` is being served right now. Served now: `{PARROT}`, `{TINY}`."
    assert "No model called" in await deployment.command(carol, "!model not a name")
    assert not await deployment.redis.exists(KEYS.choice(carol["id"]))
    outsider = deployment.fake.add_user("outsider")
    assert "Opt in first" in await deployment.command(outsider, f"!model {PARROT}")
    assert await keys_and_items_mentioning(deployment.redis, outsider["id"]) == []


async def test_only_administrators_set_a_servers_default_and_it_holds_in_that_server_only(deployment: Models) -> None:
    dave = await deployment.opt_in("dave")
    elsewhere = deployment.other_guild_channel
    refused = await deployment.command(dave, f"!model default {PARROT}", channel_id=elsewhere)
    assert "Only server administrators" in refused
    assert "no default model" in await deployment.command(dave, "!model default", channel_id=elsewhere)
    set_default = await deployment.command(deployment.admin, f"!model default {PARROT}", channel_id=elsewhere)
    assert f"`{PARROT}` is now this server's default" in set_default
    assert "No model called" in await deployment.command(deployment.admin, "!model default gpt-9", channel_id=elsewhere)
    _, there = await deployment.ask(dave, "Hey Llama, in the other server", channel_id=elsewhere)
    assert there["content"] == "echo: in the other server"
    assert "this server's default" in await deployment.command(dave, "!model", channel_id=elsewhere)
    _, here = await deployment.ask(dave, "Hey Llama, and here?")
    assert not by_parrot(here), "another server's default does not hold here"


async def test_in_a_shared_thread_the_choice_of_whoever_opened_it_holds(deployment: Models) -> None:
    erin, frank = await deployment.opt_in("erin"), await deployment.opt_in("frank")
    await deployment.command(erin, f"!model {PARROT}")
    await deployment.command(frank, f"!model {TINY}")
    thread_id = await deployment.open_thread(erin, "echoes")
    _, answer = await deployment.ask(frank, "does the thread echo?", channel_id=thread_id)
    assert answer["content"] == "echo: frank: does the thread echo?", "erin opened it: her choice holds, not frank's"
    _, answer = await deployment.ask(frank, "Hey Llama, and outside?")
    assert not by_parrot(answer), "outside the thread, frank's own choice holds"
    assert "the choice of whoever opened this thread" in await deployment.command(frank, "!model", channel_id=thread_id)


async def test_optout_erases_the_choice_with_everything_else(deployment: Models) -> None:
    grace = await deployment.opt_in("grace")
    await deployment.command(grace, f"!model {PARROT}")
    await deployment.ask(grace, "Hey Llama, remember my choice")
    assert await deployment.redis.get(KEYS.choice(grace["id"])) == PARROT
    assert "erased" in await deployment.command(grace, "!optout")
    assert await keys_and_items_mentioning(deployment.redis, grace["id"]) == []


async def test_a_message_whose_model_loses_its_last_runner_waits_its_author_is_told_once_and_it_is_answered_later(
    deployment: Models,
) -> None:
    fake, system = deployment.fake, deployment.system
    slow = system.start("runner", MODEL="echo:3", MODEL_NAME=SLOWPOKE, BATCH_SIZE="1")
    await system.wait_for_log(slow, "taking jobs", timeout=60)
    henry, ivan, judy, kim = [await deployment.opt_in(name) for name in ("henry", "ivan", "judy", "kim")]
    for user in (henry, ivan, judy, kim):
        await deployment.command(user, f"!model {SLOWPOKE}")
    being_answered = await fake.send_message(henry, "Hey Llama, first")
    await system.wait_for_log(slow, f"job {being_answered['id']} of user {henry['id']} claimed", timeout=30)
    waiting = await fake.send_message(ivan, "Hey Llama, second")
    moving = await fake.send_message(judy, "Hey Llama, third")
    asked = await fake.invoke_command(kim, "ask", {"question": "fourth"})  # no message: told in its "thinking…"
    await asyncio.sleep(0.5)
    slow.popen.terminate()  # it finishes the message in hand, and claims no other
    assert await asyncio.to_thread(slow.popen.wait, 30) == 0

    assert (await wait_reply(fake, being_answered["id"]))["content"] == "echo: first"
    notice = await wait_reply(fake, waiting["id"], timeout=20)
    assert f"`{SLOWPOKE}` isn't being served right now" in notice["content"]
    assert notice["_request"]["allowed_mentions"] == {"parse": []}, "it pings nobody"
    stats = await deployment.command(deployment.admin, "!stats")
    assert f"`{SLOWPOKE}` 3, no runner" in stats
    await asked.wait_until(
        lambda h: f"`{SLOWPOKE}` isn't being served" in ((h.original or {}).get("content") or ""), what="the notice"
    )
    # Judy takes the way out the notice offers; Ivan waits.
    await wait_reply(fake, moving["id"], timeout=20)
    assert "I moved 1 waiting message" in await deployment.command(judy, f"!model {PARROT}")
    await asyncio.sleep(7)  # the check runs every 5 s: nobody is told twice
    assert [r["content"] for r in replies_to(fake, moving["id"])][1:] == ["echo: third"]
    assert len(replies_to(fake, waiting["id"])) == 1

    system.start("runner", MODEL="echo", MODEL_NAME=SLOWPOKE)
    deadline = time.monotonic() + 60
    while len(replies_to(fake, waiting["id"])) < 2:
        assert time.monotonic() < deadline, "the waiting message was not answered once its model came back"
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.5)
    assert [r["content"] for r in replies_to(fake, waiting["id"])][1:] == ["echo: second"]
    await asked.wait_until(lambda h: (h.original or {}).get("content") == "echo: fourth", what="the answer")
    assert asked.followups == [] and not [p for p in fake.posted if "fourth" in p["content"]]


async def test_a_message_whose_chosen_model_has_no_runner_is_answered_by_another_and_says_so(
    deployment: Models,
) -> None:
    fake, system = deployment.fake, deployment.system
    fleeting = system.start("runner", MODEL="echo", MODEL_NAME="fleeting")
    await system.wait_for_log(fleeting, "taking jobs", timeout=60)
    lena = await deployment.opt_in("lena")
    assert "Done" in await deployment.command(lena, "!model fleeting")
    fleeting.popen.terminate()
    assert await asyncio.to_thread(fleeting.popen.wait, 30) == 0
    deadline = time.monotonic() + 30
    while "isn't being served" not in await deployment.command(lena, "!model"):
        assert time.monotonic() < deadline, "the stopped runner's heartbeat never expired"
        await asyncio.sleep(0.5)
    await asyncio.sleep(1.5)  # past the bot's cache of the live models (LIVE_MODELS_CACHE_S)

    asked = await fake.send_message(lena, "Hey Llama, who answers me now?")
    deadline = time.monotonic() + 60
    while len(replies := replies_to(fake, asked["id"])) < 2:
        assert time.monotonic() < deadline, f"wanted a note and an answer, got {replies}"
        await asyncio.sleep(0.05)
    [note] = [r for r in replies if "isn't being served" in r["content"]]
    assert "`fleeting`, your chosen model," in note["content"] and f"`{TINY}` is answering instead" in note["content"]
    assert note["_request"]["allowed_mentions"] == {"parse": []}
    [answer] = [r for r in replies if r is not note]
    assert not by_parrot(answer), "the default model (the tiny one) answered"
    assert await deployment.redis.get(KEYS.choice(lena["id"])) == "fleeting", "the choice itself is kept"
