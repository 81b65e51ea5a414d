"""Helpers for end-to-end tests: a running deployment and ways to wait for the bot's replies."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from redis.asyncio import Redis

from shared.queues.conversation_ids import private_conversation
from shared.storage.keys import Keys
from tests.fake_discord import FakeDiscord
from tests.fake_discord.state import Payload
from tests.system import System, base_env


def history_key(user_id: str, channel_id: str) -> str:
    """The Redis key of a user's own conversation in one channel."""
    return Keys().history(private_conversation(channel_id, user_id))


def replies_to(fake: FakeDiscord, message_id: str) -> list[Payload]:
    """The bot's posts that reply to a message."""
    return [
        post
        for post in fake.posted
        if str((post["_request"].get("message_reference") or {}).get("message_id")) == message_id
    ]


async def wait_reply(fake: FakeDiscord, message_id: str, timeout: float = 60.0) -> Payload:
    deadline = time.monotonic() + timeout
    while not (found := replies_to(fake, message_id)):
        if time.monotonic() > deadline:
            raise AssertionError(
                f"no reply to {message_id} in {timeout}s; posts: {[p.get('content', '')[:60] for p in fake.posted]}"
            )
        await asyncio.sleep(0.01)
    return found[0]


async def keys_and_items_mentioning(redis: Redis, user_id: str) -> list[str]:
    """Every key named after a user, and every list/set/hash entry holding their id: what opt-out must erase."""
    found = []
    async for key in redis.scan_iter("*"):
        if key.endswith(f":{user_id}"):
            found.append(key)
            continue
        found += [f"{key}: {item[:80]}" for item in await entries(redis, key) if user_id in item]
    return found


async def keys_holding(redis: Redis, text: str) -> list[str]:
    """Every key with a value (a string, or a list/set/hash entry) that holds `text`."""
    return [key async for key in redis.scan_iter("*") if any(text in item for item in await entries(redis, key))]


async def stored_anywhere(redis: Redis, *needles: str) -> list[str]:
    """Every key, or entry of a key, holding one of `needles` (an id, or words someone wrote)."""
    found = []
    async for key in redis.scan_iter("*"):
        items = [key, *await entries(redis, key)]
        found += [f"{key}: {item[:80]}" for item in items if any(needle in item for needle in needles)]
    return found


async def entries(redis: Redis, key: str) -> list[str]:
    """A key's value as text: a string's value, the items of a list, set or sorted set, a hash's `field=value`s."""
    kind = await redis.type(key)
    if kind == "list":
        return list(await redis.lrange(key, 0, -1))
    if kind == "set":
        return sorted(await redis.smembers(key))
    if kind == "zset":
        return list(await redis.zrange(key, 0, -1))
    if kind == "hash":
        return [f"{field}={value}" for field, value in (await redis.hgetall(key)).items()]
    return [await redis.get(key) or ""]


@dataclass
class Deployment:
    fake: FakeDiscord
    system: System
    redis: Redis

    async def opt_in(self, name: str) -> Payload:
        user = self.fake.add_user(name)
        message = await self.fake.send_message(user, "!optin")
        assert "opted in" in (await wait_reply(self.fake, message["id"]))["content"]
        return user

    async def ask(self, user: Payload, text: str, **options: object) -> tuple[Payload, Payload]:
        message = await self.fake.send_message(user, text, **options)  # type: ignore[arg-type]
        return message, await wait_reply(self.fake, message["id"])

    async def command(self, user: Payload, text: str, **options: object) -> str:
        """The text of the bot's reply to `text` (a command, usually)."""
        return str((await self.ask(user, text, **options))[1]["content"])

    async def open_thread(self, starter: Payload, topic: str, channel_id: str | None = None) -> str:
        """`!chat topic` in `channel_id` (the fake's default channel if None): the shared thread's id, once the
        bot has greeted in it."""
        before = {thread["id"] for thread in self.fake.threads}
        options = {} if channel_id is None else {"channel_id": channel_id}
        command = await self.fake.send_message(starter, f"!chat {topic}", **options)  # type: ignore[arg-type]
        deadline = asyncio.get_running_loop().time() + 30
        while not (opened := [t for t in self.fake.threads if t["id"] not in before]):
            assert asyncio.get_running_loop().time() < deadline, "no thread was opened"
            await asyncio.sleep(0.02)
        thread_id = str(opened[0]["id"])
        assert thread_id == command["id"], "a thread opened on a message takes that message's id"
        await self.fake.wait_for_posts(1, channel_id=thread_id)  # the greeting
        return thread_id


D = TypeVar("D", bound=Deployment)


@asynccontextmanager
async def running_deployment(
    fake: FakeDiscord,
    redis_url: str,
    model: str,
    log_dir: Path,
    *,
    env: Mapping[str, str] | None = None,
    runners: Sequence[Mapping[str, str]] = ({},),
    runner_module: str = "runner",
    kind: type[D] = Deployment,  # type: ignore[assignment]
) -> AsyncIterator[D]:
    """Redis flushed, the fake (its guilds and channels added) started, then the runners (one per entry of
    `runners`, each with its own extra environment), an updater and a bot, all serving; on the way out every
    process must stop with exit code 0, and no log may hold a traceback or the Discord token."""
    redis = Redis.from_url(redis_url, decode_responses=True)
    await redis.flushall()
    await fake.start()
    settings = base_env(
        redis_url=redis_url, api_base=fake.api_base, gateway_url=fake.gateway_url, token=fake.token, model=model
    )
    system = System({**settings, **(env or {})}, log_dir)
    started = [system.start(runner_module, **extra) for extra in runners]
    updater = system.start("updater")
    system.start("bot")
    try:
        await fake.wait_identified(timeout=60)
        for runner in started:
            await system.wait_for_log(runner, "taking jobs", timeout=120)
        await system.wait_for_log(updater, "posting as", timeout=60)
        yield kind(fake, system, redis)
    finally:
        codes = await asyncio.to_thread(system.stop_all)  # the fake keeps answering meanwhile
        logs = system.logs()
        await fake.stop()
        await redis.aclose()
    assert all(code == 0 for code in codes.values()), f"exit codes {codes}\n{logs}"
    assert "Traceback" not in logs, logs
    assert fake.token not in logs
