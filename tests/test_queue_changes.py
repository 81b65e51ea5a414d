"""Rate limits, edits and deletions of waiting messages, and operators' dead-letter replay, on real Redis."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from shared.config.settings import Settings
from shared.queues.job_queue import JobQueue
from shared.queues.schemas import Job
from shared.storage.keys import Keys
from shared.stores.consent import ConsentRegistry
from shared.stores.queue_inspection import QueueInspection
from tests.redis_fixtures import TEST_MODEL

MakeJob = Callable[..., Job]


async def test_messages_past_the_rate_limit_are_refused_and_counted_per_user(
    redis: Redis, keys: Keys, make_job: MakeJob
) -> None:
    queue = JobQueue(redis, keys, Settings(max_pending_per_user=10, rate_limit_per_minute=3))
    consent = ConsentRegistry(redis, keys)
    await consent.opt_in("1")
    await consent.opt_in("2")
    statuses = [(await queue.enqueue(make_job(user_id="1"))).status for _ in range(4)]
    assert statuses == ["queued", "pending", "pending", "rate_limited"]
    assert (await queue.enqueue(make_job(user_id="2"))).status == "queued"
    assert 0 < await redis.ttl(keys.rate("1")) <= 60
    await redis.delete(keys.rate("1"))  # time-travel: the minute is over
    assert (await queue.enqueue(make_job(user_id="1"))).status == "pending"


async def test_edit_of_a_waiting_message_changes_what_is_answered(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await ConsentRegistry(redis, keys).opt_in("1")
    first, second = make_job(user_id="1", content="one"), make_job(user_id="1", content="two")
    await queue.enqueue(first)
    await queue.enqueue(second)
    assert await queue.revise("1", second["id"], "two, edited") == "revised"
    assert await queue.revise("1", first["id"], "one, edited") == "revised"  # still on the queue
    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None and claimed.job["content"] == "one, edited"
    assert await queue.revise("1", first["id"], "too late") == "started"
    await queue.complete("r1", claimed, "answer", claimed.job["content"])
    nxt = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert nxt is not None and nxt.job["content"] == "two, edited"


async def test_deleting_a_waiting_message_withdraws_it_and_the_next_one_moves_up(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await ConsentRegistry(redis, keys).opt_in("1")
    first, second, third = (make_job(user_id="1", content=c) for c in ("a", "b", "c"))
    for job in (first, second, third):
        await queue.enqueue(job)
    assert await queue.revise("1", second["id"], None) == "withdrawn"
    assert await queue.revise("1", first["id"], None) == "withdrawn"
    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None and claimed.job["id"] == third["id"]
    assert await redis.get(keys.inflight("1")) == third["id"]
    assert await redis.llen(keys.pending("1")) == 0


async def test_operator_sees_stats_and_replays_a_dead_letter_of_their_guild_only(
    redis: Redis, keys: Keys, make_job: MakeJob
) -> None:
    queue = JobQueue(redis, keys, Settings(max_attempts=1))
    inspection = QueueInspection(redis, keys)
    await ConsentRegistry(redis, keys).opt_in("1")
    job = make_job(user_id="1", guild_id="800")
    await queue.enqueue(job)
    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None
    assert await queue.fail("r1", claimed, "CUDA out of memory") == "dead"

    stats = await inspection.stats()
    assert (stats.waiting, stats.dead, stats.opted_in, stats.responses) == (0, 1, 1, 1)  # the apology
    [letter] = await inspection.dead_letters(guild_id="800")
    assert (letter.job_id, letter.error, letter.attempts) == (job["id"], "CUDA out of memory", 1)
    assert await inspection.dead_letters(guild_id="801") == []
    assert await inspection.replay(job["id"], guild_id="801") == "not_found"
    assert await inspection.replay(job["id"], guild_id="800") == "queued"
    again = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert again is not None and again.job["id"] == job["id"] and again.job["attempts"] == 0
    assert await inspection.replay(job["id"], guild_id=None) == "not_found"
