"""Images through the real processes: a runner serving the tiny model that sees and one serving an echo engine that
does not; the fake Discord's CDN records every fetch. An image reaches the model that sees (fetched once, history
keeping `[image: cat.png]`); the same to the model that cannot see is answered with a note naming the one that can;
an expired URL is answered with a note; nothing is fetched for someone who has not opted in."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from PIL import Image

from tests.e2e_support import Deployment, history_key, running_deployment, wait_reply
from tests.fake_discord import FakeDiscord
from tests.fake_discord.state import Payload
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]
SEER, PARROT = "seer", "parrot"
"""The tiny model that sees (DEFAULT_MODEL), and an echo engine taking 1.5 s an answer, which cannot see."""


def png(color: tuple[int, int, int] = (220, 40, 40)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(out, format="PNG")
    return out.getvalue()


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def deployment(
    redis_server: RedisServer, tiny_vlm_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Deployment]:
    async with running_deployment(
        FakeDiscord(),
        redis_server.url,
        str(tiny_vlm_dir),
        tmp_path_factory.mktemp("images"),
        env={"DEFAULT_MODEL": SEER},
        runners=[{"MODEL_NAME": SEER}, {"MODEL": "echo:1.5", "MODEL_NAME": PARROT}],
    ) as running:
        yield running


def fetches_of(fake: FakeDiscord, message: Payload) -> list[int]:
    """The statuses of the CDN fetches of the message's attachments (0: one that never answered)."""
    ids = {attachment["id"] for attachment in message["attachments"]}
    return [fetch.status for fetch in fake.cdn_fetches if fetch.attachment_id in ids]


async def test_an_image_reaches_the_model_that_sees_and_history_keeps_a_placeholder(deployment: Deployment) -> None:
    alice = await deployment.opt_in("alice")
    assert f"`{SEER}`: 1 runner, sees images" in await deployment.command(alice, "!models")
    message, reply = await deployment.ask(
        alice, "Hey Llama, what is this?", attachments=[("cat.png", "image/png", png())]
    )
    assert reply["content"] and "-#" not in reply["content"], "seen: no note"
    assert fetches_of(deployment.fake, message) == [200], "fetched once, by the runner"
    stored = json.loads(await deployment.redis.get(history_key(alice["id"], message["channel_id"])) or "[]")
    assert stored[0]["role"] == "user" and stored[0]["content"].endswith("\n[image: cat.png]")
    assert "base64" not in json.dumps(stored)


async def test_an_image_for_a_model_that_cannot_see_is_answered_with_a_note_naming_one_that_can(
    deployment: Deployment,
) -> None:
    bob = await deployment.opt_in("bob")
    await deployment.command(bob, f"!model {PARROT}")
    message, reply = await deployment.ask(bob, "Hey Llama, what is this?", attachments=[("cat.png", None, png())])
    first, *rest = reply["content"].split("\n")
    assert first == (
        f"-# `{PARROT}` can't see images, so I answered from the words alone, without the image. "
        f"`!model {SEER}` picks a model that can."
    )
    assert rest == ["echo: what is this?", "[image: cat.png]"]
    assert fetches_of(deployment.fake, message) == [], "a model that cannot see fetches nothing"


async def test_an_image_whose_url_expired_before_its_turn_is_answered_with_a_note(deployment: Deployment) -> None:
    carol = await deployment.opt_in("carol")
    await deployment.command(carol, f"!model {PARROT}")
    first = await deployment.fake.send_message(carol, "Hey Llama, a first question")  # 1.5 s to answer
    await deployment.command(carol, f"!model {SEER}")
    # Waits behind the first in carol's lane; its URL expires meanwhile.
    message = await deployment.fake.send_message(
        carol, "Hey Llama, and this?", attachments=[("old.png", "image/png", png())]
    )
    deployment.fake.expire_attachment(message["attachments"][0]["id"])
    await wait_reply(deployment.fake, first["id"])
    reply = await wait_reply(deployment.fake, message["id"])
    note, answer = reply["content"].split("\n", 1)
    assert note == (
        "-# I couldn't see `old.png`: its link has expired or the file is gone (HTTP 404), so I answered without it."
    )
    assert answer.strip()
    assert fetches_of(deployment.fake, message) == [404]


async def test_nothing_is_fetched_for_someone_who_has_not_opted_in(deployment: Deployment) -> None:
    dave = deployment.fake.add_user("dave")
    message = await deployment.fake.send_message(
        dave, "Hey Llama, look at this", attachments=[("me.png", "image/png", png()), ("notes.txt", "text/plain", b"x")]
    )
    prompt = await wait_reply(deployment.fake, message["id"])
    assert "Opt in" in json.dumps(prompt.get("components", [])) or "opt in" in prompt["content"].lower()
    await asyncio.sleep(1.0)
    assert fetches_of(deployment.fake, message) == []
