"""The updater's posting loop against a real redis-server: several responses at once, each lane's in order."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import time
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from shared.config.settings import Settings
from shared.queues.responses import PostingState
from shared.queues.schemas import Response, encode
from shared.storage.keys import Keys
from updater.loop import Updater
from updater.rendering import Shown


class BlockingPoster:
    """Stands in for posting to Discord: records starts and ends; a job's post waits until it is released."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.release: dict[str, asyncio.Event] = {}
        self.posted_messages = 0

    async def show(self, response: Response, shown: Shown, state: PostingState) -> bool:
        job_id = response["job_id"]
        self.started.append(job_id)
        await self.release.setdefault(job_id, asyncio.Event()).wait()
        self.finished.append(job_id)
        return True

    def let_go(self, job_id: str) -> None:
        self.release.setdefault(job_id, asyncio.Event()).set()


def response(job_id: str, user_id: str) -> str:
    payload: Response = {
        "job_id": job_id,
        "user_id": user_id,
        "channel_id": "900",
        "kind": "answer",
        "content": "hi",
        "enqueued_at": time.time(),
        "completed_at": time.time(),
    }
    return encode(payload)


async def until(condition: Callable[[], Awaitable[bool] | bool], timeout_s: float = 5.0) -> None:
    for _ in range(int(timeout_s / 0.01)):
        outcome = condition()
        if await outcome if inspect.isawaitable(outcome) else outcome:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"condition not met in {timeout_s}s")


async def _is_empty(redis: Redis, key: str) -> bool:
    return await redis.llen(key) == 0


async def test_responses_post_at_once_up_to_the_bound_and_each_users_in_order(redis: Redis, keys: Keys) -> None:
    updater = Updater(Settings(updater_concurrency=3), client=None, redis=redis, worker_id="u1")  # type: ignore[arg-type]
    poster = BlockingPoster()
    updater.poster = updater.delivery.poster = poster  # type: ignore[assignment]
    await redis.sadd(keys.optin, "alice", "bob", "carol", "dave")
    for job_id, user in [("a1", "alice"), ("a2", "alice"), ("b1", "bob"), ("c1", "carol"), ("d1", "dave")]:
        await redis.lpush(keys.response, response(job_id, user))
    running = asyncio.create_task(updater.run(asyncio.Event()))
    try:
        # Three claimed: alice's second waits for her first; bob's goes alongside; dave's is not claimed yet.
        await until(lambda: poster.started == ["a1", "b1"])
        assert await redis.llen(keys.posting("u1")) == 3
        poster.let_go("b1")
        await until(lambda: poster.started == ["a1", "b1", "c1"])
        poster.let_go("a2")  # released early, yet posted only after a1
        poster.let_go("c1")
        await until(lambda: "d1" in poster.started)
        assert "a2" not in poster.started
        poster.let_go("a1")
        poster.let_go("d1")
        await until(lambda: len(poster.finished) == 5)
        assert poster.finished.index("a1") < poster.finished.index("a2")
        await until(lambda: _is_empty(redis, keys.posting("u1")))  # each acknowledged once posted
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running


async def test_a_response_a_lost_claim_reply_left_in_the_updaters_list_is_posted_once(redis: Redis, keys: Keys) -> None:
    updater = Updater(Settings(heartbeat_ttl_s=1.0), client=None, redis=redis, worker_id="u1")  # type: ignore[arg-type]
    poster = BlockingPoster()
    updater.poster = updater.delivery.poster = poster  # type: ignore[assignment]
    await redis.sadd(keys.optin, "alice", "bob")
    await redis.lpush(keys.response, response("s1", "alice"))
    # What a claim whose reply never arrived leaves behind: the response moved into our list, and nobody told us.
    assert await redis.lmove(keys.response, keys.posting("u1"), "RIGHT", "LEFT") is not None
    await updater.adopt_strays(asyncio.Event())
    await asyncio.sleep(0.05)
    assert not poster.started, "a response seen once may be a claim whose reply is on its way: not taken yet"

    await redis.lpush(keys.response, response("b1", "bob"))
    poster.let_go("s1")
    poster.let_go("b1")
    running = asyncio.create_task(updater.run(asyncio.Event()))
    try:
        await until(lambda: sorted(poster.finished) == ["b1", "s1"], timeout_s=10)
        await until(lambda: _is_empty(redis, keys.posting("u1")))
        await asyncio.sleep(1.0)  # three more checks of the list: nothing is posted twice
        assert sorted(poster.started) == ["b1", "s1"]
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
