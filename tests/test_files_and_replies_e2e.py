"""Text files and replies through the real processes (echo engine: the answer is the prompt's message, so a test reads
what the model was given): files read in as fenced blocks, Discord's message.txt as the message's text, other and bad
files left out with a note, nothing fetched for someone who has not opted in; a reply quoting the message replied to
(the bot's, or an opted-in person's) for that answer only, never into history; a non-consenting author's left out."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from shared.queues.conversation_ids import private_conversation
from tests.e2e_support import replies_to, stored_anywhere
from tests.fake_discord import FakeDiscord
from tests.fake_discord.state import Payload
from tests.fault_support import KEYS, Cluster, running_cluster
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.e2e, pytest.mark.asyncio(loop_scope="module")]


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def cluster(redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[Cluster]:
    async with running_cluster(redis_server, tmp_path_factory.mktemp("files")) as running:
        yield running


async def replies(fake: FakeDiscord, message: Payload, count: int, timeout: float = 15.0) -> list[Payload]:
    """The bot's first `count` replies to `message`, once there are that many."""
    deadline = time.monotonic() + timeout
    while len(found := replies_to(fake, message["id"])) < count:
        assert time.monotonic() < deadline, f"wanted {count} replies to {message['id']}, got {found}"
        await asyncio.sleep(0.02)
    return found


def without_notes(content: str) -> str:
    """An answer's text without the `-# ` note lines above it (the echo engine cannot see images: a note says so)."""
    lines = content.split("\n")
    while lines and lines[0].startswith("-# "):
        lines.pop(0)
    return "\n".join(lines)


async def answer(fake: FakeDiscord, message: Payload) -> str:
    """The echo answer to `message` (what the model was given as the message)."""
    deadline = time.monotonic() + 15
    while not (
        found := [p for p in replies_to(fake, message["id"]) if without_notes(p["content"]).startswith("echo: ")]
    ):
        assert time.monotonic() < deadline, f"no answer to {message['id']}: {replies_to(fake, message['id'])}"
        await asyncio.sleep(0.02)
    return without_notes(str(found[0]["content"])).removeprefix("echo: ")


async def stored_user_turns(cluster: Cluster, user: Payload) -> list[str]:
    raw = await cluster.redis.get(KEYS.history(private_conversation(cluster.fake.channel_id, user["id"])))
    return [turn["content"] for turn in json.loads(raw or "[]") if turn["role"] == "user"]


async def test_text_files_are_read_in_as_fenced_blocks_and_stored_with_the_turn(cluster: Cluster) -> None:
    fake = cluster.fake
    [ada] = await cluster.opt_in(["ada"])
    files = [("app.py", "text/x-python", b"print('hi')\n"), ("notes.md", None, b"# Todo\n- ship it\n")]
    asked = await fake.send_message(ada, "Hey Llama, review this", attachments=files)
    seen = await answer(fake, asked)
    assert seen == "review this\n\napp.py:\n```py\nprint('hi')\n```\n\nnotes.md:\n```markdown\n# Todo\n- ship it\n```"
    assert await stored_user_turns(cluster, ada) == [seen], "the files are part of the user's turn"


async def test_a_long_paste_is_the_messages_own_text(cluster: Cluster) -> None:
    fake = cluster.fake
    [bo] = await cluster.opt_in(["bo"])
    paste = "line one of a long paste\n" * 3
    pasted = [("message.txt", "text/plain; charset=utf-8", paste.encode())]
    asked = await fake.send_message(bo, "Hey Llama", attachments=pasted)
    assert await answer(fake, asked) == paste.strip()


async def test_other_and_bad_files_are_left_out_with_a_note_and_the_words_answered(cluster: Cluster) -> None:
    fake = cluster.fake
    [cy] = await cluster.opt_in(["cy"])
    files = [
        ("report.pdf", "application/pdf", b"%PDF-1.7 ..."),
        ("tool.exe", None, b"MZ\x90\x00"),
        ("latin1.txt", "text/plain", "café".encode("latin-1")),
        ("huge.log", "text/plain", b"x" * 1_500_000),
        ("gone.txt", "text/plain", b"expired before I was read"),
    ]
    fake.expire_attachment("gone.txt")
    asked = await fake.send_message(cy, "Hey Llama, what about these", attachments=files)
    note, _ = sorted(await replies(fake, asked, 2), key=lambda p: p["content"].startswith("echo"))
    assert await answer(fake, asked) == "what about these"
    lines = note["content"].splitlines()
    assert all(line.startswith("-# ") for line in lines) and len(lines) == 5
    for name, why in [
        ("report.pdf", "only text files and images"),
        ("tool.exe", "only text files and images"),
        ("latin1.txt", "isn't UTF-8"),
        ("huge.log", "over 1 MB"),
        ("gone.txt", "couldn't fetch"),
    ]:
        assert any(f"`{name}`" in line and why in line for line in lines), (name, lines)
    fetched = {f.filename for f in fake.cdn_fetches}
    assert "huge.log" not in fetched and "report.pdf" not in fetched, "left out without fetching"


async def test_nothing_of_someone_not_opted_in_is_fetched(cluster: Cluster) -> None:
    fake = cluster.fake
    stranger = fake.add_user("stranger")
    before = len(fake.cdn_fetches)
    diary = [("diary.txt", "text/plain", b"dear diary")]
    asked = await fake.send_message(stranger, "Hey Llama, read my diary", attachments=diary)
    [prompt] = await replies(fake, asked, 1)
    assert prompt["components"], "the consent prompt, and nothing else"
    assert fake.cdn_fetches[before:] == []


async def test_a_reply_to_the_bots_answer_quotes_it_for_that_answer_only(cluster: Cluster) -> None:
    fake = cluster.fake
    [dee] = await cluster.opt_in(["dee"])
    first = await fake.send_message(dee, "Hey Llama, the capital of Peru is Lima")
    await answer(fake, first)
    [bots_answer] = [p for p in replies_to(fake, first["id"]) if p["content"].startswith("echo")]
    follow = await fake.send_message(dee, "is this right?", reply_to=bots_answer["id"])
    seen = await answer(fake, follow)
    assert seen == "(Replying to your earlier answer:)\n> echo: the capital of Peru is Lima\n\nis this right?"
    assert (await stored_user_turns(cluster, dee))[-1] == "is this right?", "the quote is not stored"


async def test_a_reply_to_an_opted_in_persons_message_quotes_it_and_to_anyone_elses_leaves_it_out(
    cluster: Cluster,
) -> None:
    fake = cluster.fake
    eve, fay = await cluster.opt_in(["eve", "fay"])
    stranger = fake.add_user("gil")
    source = [("fact.txt", None, b"source: a zoo")]
    said = await fake.send_message(fay, "llamas hum when they are content", attachments=source)
    asked = await fake.send_message(eve, "Hey Llama, is that true?", reply_to=said["id"])
    assert await answer(fake, asked) == (
        "(Replying to fay's message:)\n> llamas hum when they are content\n>\n"
        "> fact.txt:\n> ```\n> source: a zoo\n> ```\n\nis that true?"
    )
    assert (await stored_user_turns(cluster, eve))[-1] == "is that true?"

    secret = await fake.send_message(stranger, "my passcode is 7781 tamarind")
    probing = await fake.send_message(eve, "Hey Llama, what did he say?", reply_to=secret["id"])
    assert await answer(fake, probing) == "what did he say?"
    [note] = [p for p in replies_to(fake, probing["id"]) if not p["content"].startswith("echo")]
    assert "hasn't opted in" in note["content"]
    assert await stored_anywhere(cluster.redis, "tamarind", stranger["id"]) == []


async def test_a_reply_to_a_deleted_message_or_one_discord_did_not_send(cluster: Cluster) -> None:
    fake = cluster.fake
    [hal] = await cluster.opt_in(["hal"])
    old = await fake.send_message(hal, "soon gone")
    await fake.delete_message(old["id"])
    asked = await fake.send_message(hal, "Hey Llama, what did I say?", reply_to=old["id"])
    assert await answer(fake, asked) == "what did I say?"
    assert any("is gone" in p["content"] for p in replies_to(fake, asked["id"]))

    kept = await fake.send_message(hal, "still here")
    fetched = await fake.send_message(hal, "Hey Llama, and this?", reply_to=kept["id"], referenced_sent=False)
    assert await answer(fake, fetched) == "(Replying to hal's message:)\n> still here\n\nand this?"


async def test_images_past_max_images_are_left_out_with_a_note(cluster: Cluster) -> None:
    fake = cluster.fake
    [ivy] = await cluster.opt_in(["ivy"])
    pictures = [(f"{n}.png", "image/png", b"\x89PNG\r\n\x1a\n" + bytes(16)) for n in range(1, 7)]
    asked = await fake.send_message(ivy, "Hey Llama, which is best?", attachments=pictures)
    await answer(fake, asked)
    await replies(fake, asked, 2)  # the answer, and the bot's own note
    notes = [p["content"] for p in replies_to(fake, asked["id"]) if "images at most" in p["content"]]
    assert notes == ["-# I look at 4 images at most, so I left out `5.png`, `6.png`."]
    assert {f.filename for f in fake.cdn_fetches} & {"5.png", "6.png"} == set(), "the ones left out are not fetched"
