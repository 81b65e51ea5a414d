"""Streaming against a real redis-server: partial texts replace each other in place, one notice at a time, and a
finished job leaves nothing of its stream behind."""

from __future__ import annotations

import json
from collections.abc import Callable

from redis.asyncio import Redis

from bot.texts import status_text
from shared.queues.job_queue import ClaimedJob, JobQueue
from shared.queues.responses import ResponseQueue
from shared.queues.schemas import Job, Response, decode_response
from shared.storage.keys import Keys
from shared.stores.consent import ConsentRegistry
from shared.stores.waiting_status import WaitingStatusReader
from tests.redis_fixtures import TEST_MODEL, enqueue_opted_in

MakeJob = Callable[..., Job]


async def responses_in(redis: Redis, keys: Keys) -> list[Response]:
    return [decode_response(raw) for raw in reversed(await redis.lrange(keys.response, 0, -1))]


async def claim(queue: JobQueue) -> ClaimedJob:
    [(claimed, _)] = await queue.claim_batch("r1", TEST_MODEL, 1, timeout_s=0.1)
    return claimed


async def test_partials_are_superseded_not_queued(redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob) -> None:
    await enqueue_opted_in(redis, keys, queue, [make_job(user_id="1")])
    claimed = await claim(queue)
    assert [r["kind"] for r in await responses_in(redis, keys)] == ["started"]
    await redis.delete(keys.response)
    for text in ("one", "one two", "one two three"):
        assert await queue.stream("r1", [(claimed, text)], 60) == [True]
    [notice] = await responses_in(redis, keys)
    assert notice["kind"] == "partial", "three partial texts, one notice"
    state = await ResponseQueue(redis, keys).lock(claimed.job["id"], "1", "u1", 5000)
    assert state is not None and state.partial == "one two three", "the newest text wins"
    await queue.stream("r1", [(claimed, "one two three four")], 60)
    assert len(await responses_in(redis, keys)) == 2, "once taken, the next text is noticed again"


async def test_completion_ends_the_stream_and_tells_whether_the_answer_may_edit_shown_parts(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    streamed, quiet = make_job(user_id="1"), make_job(user_id="2")
    await enqueue_opted_in(redis, keys, queue, [streamed, quiet])
    first, second = await claim(queue), await claim(queue)
    by_id = {first.job["id"]: first, second.job["id"]: second}
    await queue.stream("r1", [(by_id[streamed["id"]], "partial words")], 60)
    await redis.delete(keys.response)
    for claimed in (by_id[streamed["id"]], by_id[quiet["id"]]):
        assert await queue.complete("r1", claimed, "answer", "q")
    answers = {r["job_id"]: r for r in await responses_in(redis, keys)}
    assert answers[streamed["id"]]["fresh"] is False, "its final text must edit the partial, under the lock"
    assert answers[quiet["id"]]["fresh"] is True, "nothing of it can be on Discord: posted straight away"
    assert not await redis.exists(keys.stream(streamed["id"]))
    assert await queue.stream("r1", [(by_id[streamed["id"]], "too late")], 60) == [False]
    assert not await redis.exists(keys.stream(streamed["id"])), "a late partial does not bring the stream back"


async def test_opting_out_mid_stream_retracts_once_and_keeps_nothing(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await enqueue_opted_in(redis, keys, queue, [make_job(user_id="1")])
    claimed = await claim(queue)
    await queue.stream("r1", [(claimed, "partial words")], 60)
    await ResponseQueue(redis, keys).record_posted(claimed.job["id"], 0, "555", "d")
    await ConsentRegistry(redis, keys).opt_out("1")
    assert await queue.stream("r1", [(claimed, "more words")], 60) == [False]
    assert await queue.stream("r1", [(claimed, "even more")], 60) == [False]
    assert [r["kind"] for r in await responses_in(redis, keys)] == ["retract"], "one retraction"
    assert await redis.hgetall(keys.stream(claimed.job["id"])) == {"retracted": "1"}, "no text of theirs"
    assert await queue.complete("r1", claimed, "answer", "q")
    assert [r["kind"] for r in await responses_in(redis, keys)] == ["retract", "retract"]
    assert not await redis.exists(keys.stream(claimed.job["id"]))


async def test_status_counts_what_is_ahead_and_the_recent_pace(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    others = [make_job(user_id=str(i)) for i in (10, 11)]
    mine = [make_job(user_id="1", content="first"), make_job(user_id="1", content="second")]
    await enqueue_opted_in(redis, keys, queue, [*others, *mine])
    await redis.set(keys.heartbeat("runner", "r1"), json.dumps({"model": TEST_MODEL, "answered_last_minute": 30}))
    # Another model's runners and queue neither go before mine nor answer mine.
    await redis.set(keys.heartbeat("runner", "r2"), json.dumps({"model": "other", "answered_last_minute": 600}))
    await redis.sadd(keys.workers("runner"), "r1", "r2")
    await enqueue_opted_in(redis, keys, queue, [make_job(user_id="12", model="other")])
    status = await WaitingStatusReader(redis, keys).status_of("1")
    [lane] = status.lanes
    assert (lane.answering, lane.ahead_in_queue, lane.mine_waiting, lane.before_mine) == (False, 2, 2, 0)
    assert lane.model == TEST_MODEL and status.pace(lane) == 30
    assert status.rough_wait_s(lane) == 6.0  # 3 answers at 30 a minute
    text = status_text(status)
    assert "2 messages of others are ahead" in text and "2 messages of yours" in text and "seconds" in text
    for _ in range(3):
        await claim(queue)  # the two others' and my first: mine is being answered
    [lane] = (await WaitingStatusReader(redis, keys).status_of("1")).lanes
    assert (lane.answering, lane.mine_waiting) == (True, 1)
    assert "Nothing of yours is waiting" in status_text(await WaitingStatusReader(redis, keys).status_of("2"))
