"""`!forget` against a real redis-server while answers are being written: nothing of an exchange begun before it (being
answered, or waiting its turn) is stored after it, in private conversations and shared threads alike."""

from __future__ import annotations

import json
from collections.abc import Callable

from redis.asyncio import Redis

from shared.queues.conversation_ids import private_conversation, shared_conversation
from shared.queues.job_queue import ClaimedJob, JobQueue
from shared.queues.schemas import Job, decode_job, decode_response
from shared.storage.keys import Keys
from shared.stores.consent import ConsentRegistry
from shared.stores.shared_threads import SharedThreads
from tests.e2e_support import keys_and_items_mentioning, keys_holding
from tests.redis_fixtures import TEST_MODEL

MakeJob = Callable[..., Job]
ALICE, BOB = "424242", "737373"
"""Ids no job id or key contains by chance, for scans of all of Redis."""
THREAD = "5000"


async def claim(queue: JobQueue) -> ClaimedJob:
    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None
    return claimed


async def complete(queue: JobQueue, claimed: ClaimedJob) -> None:
    content = claimed.job["content"]
    assert await queue.complete("r1", claimed, f"answer to {content}", content)


async def answers_posted(redis: Redis, keys: Keys) -> list[str]:
    """The final answers waiting for an updater, oldest first (taken off the list)."""
    found = []
    while (raw := await redis.rpop(keys.response)) is not None:
        response = decode_response(raw)
        if response["kind"] == "answer":
            found.append(response["content"])
    return found


async def test_an_answer_completed_after_forget_is_posted_and_nothing_of_it_or_of_what_waited_is_stored(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    consent = ConsentRegistry(redis, keys)
    await consent.opt_in(ALICE)
    conversation = private_conversation("900", ALICE)
    await consent.forget(ALICE)  # an earlier forget: the jobs below carry a count of 1
    await queue.enqueue(make_job(user_id=ALICE, content="kept-before"))
    await complete(queue, await claim(queue))
    await queue.enqueue(make_job(user_id=ALICE, content="asked-while-writing"))
    writing = await claim(queue)
    assert writing.job.get("forgets") == 1, "the enqueue script stamps the count it accepted the job under"
    await queue.enqueue(make_job(user_id=ALICE, content="waiting-its-turn"))

    assert await consent.forget(ALICE)
    await complete(queue, writing)
    await complete(queue, await claim(queue))  # the waiting one, sent before the forget too

    assert await answers_posted(redis, keys) == [
        "answer to kept-before",
        "answer to asked-while-writing",
        "answer to waiting-its-turn",
    ], "the answers are still posted"
    assert not await redis.exists(keys.history(conversation), keys.conversations(ALICE))
    for text in ("kept-before", "asked-while-writing", "waiting-its-turn"):
        assert await keys_holding(redis, text) == []
    await queue.enqueue(make_job(user_id=ALICE, content="asked-after"))
    await complete(queue, await claim(queue))
    assert [turn["content"] for turn in await queue.history(conversation)] == ["asked-after", "answer to asked-after"]
    assert await redis.smembers(keys.conversations(ALICE)) == {conversation}

    assert await consent.opt_out(ALICE)
    assert await keys_and_items_mentioning(redis, ALICE) == [], "opt-out leaves the forget count behind"


async def test_forget_in_a_thread_drops_the_users_exchanges_begun_before_and_keeps_everyone_elses(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    consent, threads = ConsentRegistry(redis, keys), SharedThreads(redis, keys, ttl_s=3600)
    shared = shared_conversation(THREAD)

    def said(user: str, name: str, content: str) -> Job:
        return make_job(
            user_id=user, channel_id=THREAD, content=content, conversation=shared, lane=shared, author_name=name
        )

    for user in (ALICE, BOB):
        await consent.opt_in(user)
    await threads.open(THREAD, "800", "900", ALICE)
    await queue.enqueue(said(ALICE, "alice", "alice-earlier"))
    await complete(queue, await claim(queue))
    await queue.enqueue(said(BOB, "bob", "bob-in-flight"))
    bobs = await claim(queue)
    await queue.enqueue(said(ALICE, "alice", "alice-waiting"))  # waits behind bob's in the thread's lane
    [raw] = await redis.lrange(keys.pending(shared), 0, -1)
    assert "forgets" not in decode_job(raw), "a job of someone who never forgot carries no count (read as 0)"

    assert await consent.forget(ALICE)
    await complete(queue, bobs)
    await complete(queue, await claim(queue))

    history = json.dumps(await queue.history(shared))
    assert "bob-in-flight" in history, "another speaker's exchange in flight is kept"
    assert "alice" not in history and ALICE not in history, history
    assert await answers_posted(redis, keys) == [
        "answer to alice-earlier",
        "answer to bob-in-flight",
        "answer to alice-waiting",
    ]
    await queue.enqueue(said(ALICE, "alice", "alice-after"))
    await complete(queue, await claim(queue))
    turns = [(turn["content"], turn.get("user_id")) for turn in await queue.history(shared)]
    assert turns == [
        ("bob-in-flight", BOB),
        ("answer to bob-in-flight", BOB),
        ("alice-after", ALICE),
        ("answer to alice-after", ALICE),
    ]


async def test_forget_counts_nothing_for_someone_not_opted_in(redis: Redis, keys: Keys) -> None:
    assert not await ConsentRegistry(redis, keys).forget(ALICE)
    assert await redis.keys("*") == []
