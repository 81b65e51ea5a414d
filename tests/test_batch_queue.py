"""Batched queue operations against a real redis-server: one round trip per batch, the same effects as one by one."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from redis.asyncio import Redis

from runner.engines.echo import EchoEngine
from runner.worker import Runner
from shared.config.settings import Settings
from shared.queues.conversation_ids import private_conversation
from shared.queues.job_queue import Completion, JobQueue
from shared.queues.responses import ResponseQueue
from shared.queues.schemas import Job, decode_job, decode_response
from shared.storage.keys import Keys
from tests.redis_fixtures import TEST_MODEL, enqueue_opted_in

MakeJob = Callable[..., Job]


async def test_claim_waiting_takes_up_to_the_limit_oldest_first(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    jobs = [make_job(user_id=str(user)) for user in range(5)]
    await enqueue_opted_in(redis, keys, queue, jobs)
    claimed = await queue.claim_waiting("r1", TEST_MODEL, 3)
    assert [c.job["id"] for c in claimed] == [job["id"] for job in jobs[:3]]
    assert [decode_job(raw)["id"] for raw in await redis.lrange(keys.processing("r1"), 0, -1)] == [
        job["id"] for job in reversed(jobs[:3])
    ]
    assert [c.job["id"] for c in await queue.claim_waiting("r1", TEST_MODEL, 10)] == [job["id"] for job in jobs[3:]]
    assert await queue.claim_waiting("r1", TEST_MODEL, 10) == []
    assert await queue.claim_waiting("r1", TEST_MODEL, 0) == []


async def test_claim_batch_takes_the_oldest_and_what_waits_behind_it_with_histories(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await enqueue_opted_in(redis, keys, queue, [make_job(user_id="1", content="q1")])
    [first] = await queue.claim_waiting("r1", TEST_MODEL, 1)
    assert await queue.complete("r1", first, "a1", "q1")
    jobs = [make_job(user_id="2"), make_job(user_id="1"), make_job(user_id="3")]
    await enqueue_opted_in(redis, keys, queue, jobs)
    claimed = await queue.claim_batch("r1", TEST_MODEL, 2, timeout_s=0.1)
    assert [(c.job["id"], turns) for c, turns in claimed] == [
        (jobs[0]["id"], []),
        (jobs[1]["id"], [{"role": "user", "content": "q1"}, {"role": "assistant", "content": "a1"}]),
    ]
    assert [c.job["id"] for c, _ in await queue.claim_batch("r1", TEST_MODEL, 2, timeout_s=0.1)] == [jobs[2]["id"]]
    assert (
        await queue.claim_batch("r1", TEST_MODEL, 2, timeout_s=0.1) == []
    )  # timed out; the jobs held are not claimed again
    assert await redis.llen(keys.processing("r1")) == 3


async def test_claim_batch_blocks_for_the_next_job(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    claiming = asyncio.create_task(queue.claim_batch("r1", TEST_MODEL, 8, timeout_s=5))
    for _ in range(500):  # until the claim, finding nothing waiting, blocks
        if "cmd=blmove" in await redis.execute_command("CLIENT", "LIST"):
            break
        await asyncio.sleep(0.01)
    job = make_job(user_id="1")
    await enqueue_opted_in(redis, keys, queue, [job])
    assert [(c.job["id"], turns) for c, turns in await claiming] == [(job["id"], [])]


async def test_claim_batch_survives_redis_forgetting_its_scripts(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    jobs = [make_job(user_id=str(user)) for user in range(3)]
    await enqueue_opted_in(redis, keys, queue, jobs)
    await redis.script_flush()  # what a Redis restart does
    claimed = await queue.claim_batch("r1", TEST_MODEL, 8, timeout_s=0.1)
    assert [c.job["id"] for c, _ in claimed] == [job["id"] for job in jobs]


async def test_complete_many_has_the_effects_of_complete_for_each_job(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    first, second, other = make_job(user_id="1"), make_job(user_id="1"), make_job(user_id="2")
    await enqueue_opted_in(redis, keys, queue, [first, second, other])
    batch = await queue.claim_waiting("r1", TEST_MODEL, 10)
    assert [c.job["id"] for c in batch] == [first["id"], other["id"]]
    done = await queue.complete_many("r1", [Completion(c, f"answer {c.job['id']}", "question") for c in batch])
    assert done == [True, True]
    answers = [decode_response(raw) for raw in reversed(await redis.lrange(keys.response, 0, -1))]
    assert [(a["job_id"], a["content"]) for a in answers] == [(c.job["id"], f"answer {c.job['id']}") for c in batch]
    assert await redis.llen(keys.processing("r1")) == 0
    assert await redis.get(keys.inflight("1")) == second["id"]  # the user's next message moved up
    assert not await redis.exists(keys.inflight("2"))
    assert [c.job["id"] for c in await queue.claim_waiting("r1", TEST_MODEL, 10)] == [second["id"]]
    assert len(await queue.history(private_conversation("900", "2"))) == 2


async def test_complete_many_refuses_only_the_jobs_taken_back(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await enqueue_opted_in(redis, keys, queue, [make_job(user_id="1"), make_job(user_id="2")])
    batch = await queue.claim_waiting("r1", TEST_MODEL, 10)
    await redis.lrem(keys.processing("r1"), 1, batch[0].raw)  # as if reaped and claimed elsewhere
    done = await queue.complete_many("r1", [Completion(c, "answer", "question") for c in batch])
    assert done == [False, True]
    assert await redis.llen(keys.response) == 1


async def test_complete_many_survives_redis_forgetting_its_scripts(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await enqueue_opted_in(redis, keys, queue, [make_job(user_id=str(user)) for user in range(3)])
    batch = await queue.claim_waiting("r1", TEST_MODEL, 10)
    await redis.script_flush()  # what a Redis restart does
    assert await queue.complete_many("r1", [Completion(c, "answer", "question") for c in batch]) == [True] * 3
    assert await redis.llen(keys.response) == 3


async def test_posting_state_and_updater_count(redis: Redis, keys: Keys) -> None:
    responses = ResponseQueue(redis, keys)
    state = await responses.posting_state("77", "1")
    assert (state.opted_in, state.posted) == (False, {})
    await redis.sadd(keys.optin, "1")
    await responses.record_posted("77", 1, "9001")
    state = await responses.posting_state("77", "1")
    assert (state.opted_in, state.posted) == (True, {1: "9001"})
    assert await responses.updater_count() == 0
    await redis.sadd(keys.workers("updater"), "u1", "u2")
    assert await responses.updater_count() == 2


async def test_a_claim_reads_consent_and_a_given_back_response_is_no_longer_fresh(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    responses = ResponseQueue(redis, keys)
    jobs = [make_job(user_id="1"), make_job(user_id="2"), make_job(user_id="3")]
    await enqueue_opted_in(redis, keys, queue, jobs)
    assert await queue.complete_many(
        "r1", [Completion(c, "a", "q") for c in await queue.claim_waiting("r1", TEST_MODEL, 3)]
    )
    # An updater claims two, posts the first part of the first, and dies: both go back, no longer fresh.
    for _ in range(2):
        assert await responses.claim("u0", timeout_s=0.1) is not None
    await responses.record_posted(jobs[0]["id"], 0, "5000", "d")
    assert await responses.reap("u0") == 2
    await redis.srem(keys.optin, "2", "3")
    await redis.script_flush()  # the first claim also has to load the script again
    claims = [await responses.claim_with_consent("u1", timeout_s=0.1) for _ in range(3)]
    seen = [(c.response["job_id"], c.response.get("fresh"), opted_in) for c, opted_in in claims]  # type: ignore[misc]
    assert seen == [(jobs[0]["id"], False, True), (jobs[1]["id"], False, False), (jobs[2]["id"], True, False)]
    assert await responses.claim_with_consent("u1", timeout_s=0.1) is None
    # Under the job's lock, the posted record is read: the part the dead updater created is known.
    state = await responses.lock(jobs[0]["id"], "1", "u1", 5000)
    assert state is not None and (state.opted_in, state.posted, state.digests) == (True, {0: "5000"}, {0: "d"})
    assert await responses.lock(jobs[0]["id"], "1", "u2", 5000) is None, "one updater at a time"
    await responses.unlock(jobs[0]["id"], "u2")  # not the holder: no effect
    assert await responses.lock(jobs[0]["id"], "1", "u2", 5000) is None
    await responses.unlock(jobs[0]["id"], "u1")
    assert await responses.lock(jobs[0]["id"], "1", "u2", 5000) is not None
    assert await redis.llen(keys.posting("u1")) == 3
    assert await responses.release("u1") == 3
    assert all(decode_response(raw).get("fresh") is False for raw in await redis.lrange(keys.response, 0, -1))


async def test_runner_batches_what_waits_and_answers_it_in_one_go(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    runner = Runner(Settings(batch_size=2, model_name=TEST_MODEL), EchoEngine(), redis, "r1")
    jobs = [make_job(user_id=str(user), content=f"q{user}") for user in range(3)]
    await enqueue_opted_in(redis, keys, queue, jobs)
    batch = await runner.claim_batch()
    assert [(c.job["id"], history) for c, history in batch] == [(job["id"], []) for job in jobs[:2]]
    runner.generation.start()
    await asyncio.gather(*runner.start_jobs(batch))
    await runner.generation.stop()
    assert runner.stats.answered == 2
    assert await queue.history(private_conversation("900", "1")) == [
        {"role": "user", "content": "q1"},
        {"role": "assistant", "content": "echo: q1"},
    ]
    assert await redis.llen(keys.processing("r1")) == 0
