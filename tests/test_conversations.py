"""Conversations against a real redis-server: per-channel histories, shared threads as lanes, erasure, fairness."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import NamedTuple

import pytest
from redis.asyncio import Redis

from shared.queues.conversation_ids import SHARED_PREFIX, private_conversation, shared_conversation
from shared.queues.job_queue import ClaimedJob, JobQueue
from shared.queues.schemas import Job, decode_response
from shared.storage.keys import Keys
from shared.storage.scripts import Scripts
from shared.stores.consent import ConsentRegistry
from shared.stores.queue_inspection import QueueInspection
from shared.stores.shared_threads import SharedThreads, drop_legacy_histories
from tests.e2e_support import keys_and_items_mentioning
from tests.redis_fixtures import TEST_MODEL

MakeJob = Callable[..., Job]
THREAD = "5000"
SHARED = shared_conversation(THREAD)
ALICE, BOB = "424242", "737373"
"""Ids no job id or key contains by chance, for scans of all of Redis."""


class Store(NamedTuple):
    """What these tests work with, as one fixture."""

    redis: Redis
    keys: Keys
    queue: JobQueue
    consent: ConsentRegistry
    threads: SharedThreads
    make_job: MakeJob


@pytest.fixture
def consent(redis: Redis, keys: Keys) -> ConsentRegistry:
    return ConsentRegistry(redis, keys)


@pytest.fixture
def store(redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob) -> Store:
    return Store(redis, keys, queue, ConsentRegistry(redis, keys), SharedThreads(redis, keys, ttl_s=3600), make_job)


def thread_job(make_job: MakeJob, user_id: str, name: str, content: str) -> Job:
    return make_job(
        user_id=user_id, channel_id=THREAD, content=content, conversation=SHARED, lane=SHARED, author_name=name
    )


async def answer(queue: JobQueue, runner: str = "r1") -> ClaimedJob:
    """Claims the oldest job and completes it with an answer naming its question."""
    claimed = await queue.claim(runner, TEST_MODEL, timeout_s=0.1)
    assert claimed is not None
    assert await queue.complete(runner, claimed, f"answer to {claimed.job['content']}", claimed.job["content"])
    return claimed


async def test_one_users_channels_never_share_a_history(
    redis: Redis, keys: Keys, queue: JobQueue, consent: ConsentRegistry, make_job: MakeJob
) -> None:
    await consent.opt_in("1")
    await queue.enqueue(make_job(user_id="1", channel_id="dm", content="my secret is 42"))
    await answer(queue)
    await queue.enqueue(make_job(user_id="1", channel_id="public", content="what did I just tell you?"))
    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None
    [(_, history)] = [(claimed, turns) for turns in await queue.histories([claimed.job])]
    assert history == [], "the DM exchange reached the prompt of a message in another channel"
    await queue.complete("r1", claimed, "nothing", claimed.job["content"])
    dm, public = private_conversation("dm", "1"), private_conversation("public", "1")
    assert "my secret" in json.dumps(await queue.history(dm)) and "my secret" not in json.dumps(
        await queue.history(public)
    )
    assert await redis.smembers(keys.conversations("1")) == {dm, public}


async def test_a_shared_thread_is_one_lane_with_named_turns_in_the_order_sent(
    store: Store,
) -> None:
    for user in ("1", "2"):
        await store.consent.opt_in(user)
    assert await store.threads.open(THREAD, "800", "900", "1")
    first, second = (
        thread_job(store.make_job, "1", "alice", "mountains?"),
        thread_job(store.make_job, "2", "bob", "or sea?"),
    )
    assert (await store.queue.enqueue(first)).status == "queued"
    assert (await store.queue.enqueue(second)).status == "pending"
    assert await store.redis.llen(store.keys.query(TEST_MODEL)) == 1, "a thread takes one place in the queue"
    assert (await answer(store.queue)).job["id"] == first["id"]
    claimed = await store.queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None and claimed.job["id"] == second["id"]
    [history] = await store.queue.histories([claimed.job])
    assert history == [
        {"role": "user", "content": "mountains?", "user_id": "1", "name": "alice"},
        {"role": "assistant", "content": "answer to mountains?", "user_id": "1"},
    ]


async def test_a_shared_lane_bounds_each_speaker_and_the_whole_thread(
    store: Store,
) -> None:
    users = [str(i) for i in range(1, 9)]
    for user in users:
        await store.consent.opt_in(user)
    await store.threads.open(THREAD, "800", "900", "1")
    statuses = [(await store.queue.enqueue(thread_job(store.make_job, "1", "alice", f"q{i}"))).status for i in range(5)]
    assert statuses == ["queued", "pending", "pending", "pending", "full"]  # max_pending_per_user=3 waiting
    for user in users[1:]:
        await store.queue.enqueue(thread_job(store.make_job, user, f"u{user}", "hi"))
    # 3 of alice's + 7 others wait: the policy's max_pending_per_thread is 10.
    result = await store.queue.enqueue(thread_job(store.make_job, "8", "u8", "again"))
    assert (result.status, result.waiting) == ("lane_full", 10)


async def test_a_thread_nobody_registered_is_not_shared(
    redis: Redis, queue: JobQueue, consent: ConsentRegistry, make_job: MakeJob
) -> None:
    await consent.opt_in("1")
    assert (await queue.enqueue(thread_job(make_job, "1", "alice", "hi"))).status == "not_shared"
    assert await redis.keys("*") == [Keys().optin]


async def test_a_busy_thread_and_a_user_in_many_channels_take_one_place_each(
    store: Store,
) -> None:
    """Fairness: the queue holds one job per lane, so each waits at most one round of the others."""
    for user in ("1", "2", "3", "4", "5"):
        await store.consent.opt_in(user)
    await store.threads.open(THREAD, "800", "900", "1")
    for user in ("1", "2", "3"):
        await store.queue.enqueue(thread_job(store.make_job, user, f"u{user}", f"thread from {user}"))
    for channel in ("a", "b", "c"):
        await store.queue.enqueue(store.make_job(user_id="4", channel_id=channel, content=f"4 in {channel}"))
    await store.queue.enqueue(store.make_job(user_id="5", content="5 once"))
    served = [(await answer(store.queue)).job["content"] for _ in range(3)]
    assert served == ["thread from 1", "4 in a", "5 once"]
    served = [(await answer(store.queue)).job["content"] for _ in range(4)]
    assert served == ["thread from 2", "4 in b", "thread from 3", "4 in c"]


async def test_forget_erases_own_conversations_and_own_turns_in_threads_keeping_the_others(
    store: Store,
) -> None:
    for user in ("1", "2"):
        await store.consent.opt_in(user)
    await store.threads.open(THREAD, "800", "900", "1")
    await store.queue.enqueue(store.make_job(user_id="1", channel_id="dm", content="private"))
    await answer(store.queue)
    for user, name in (("1", "alice"), ("2", "bob"), ("1", "alice")):
        await store.queue.enqueue(thread_job(store.make_job, user, name, f"{name} says"))
        await answer(store.queue)
    assert await store.consent.forget("1")
    assert not await store.redis.exists(store.keys.history(private_conversation("dm", "1")))
    assert await store.queue.history(SHARED) == [
        {"role": "user", "content": "bob says", "user_id": "2", "name": "bob"},
        {"role": "assistant", "content": "answer to bob says", "user_id": "2"},
    ]
    assert await store.consent.is_opted_in("1")
    assert not await store.consent.forget("1"), "nothing of theirs is left to forget"


async def test_optout_leaves_nothing_of_the_user_in_shared_threads_and_the_thread_moves_on(
    store: Store,
) -> None:
    for user in (ALICE, BOB):
        await store.consent.opt_in(user)
    await store.threads.open(THREAD, "800", "900", ALICE)  # alice started it
    await store.queue.enqueue(thread_job(store.make_job, ALICE, "alice", "first"))
    await answer(store.queue)
    await store.queue.enqueue(thread_job(store.make_job, BOB, "bob", "bob's earlier"))
    await answer(store.queue)
    await store.queue.enqueue(store.make_job(user_id=ALICE, channel_id="dm", content="private"))
    await answer(store.queue)
    mine = thread_job(store.make_job, ALICE, "alice", "second")
    theirs = thread_job(store.make_job, BOB, "bob", "bob's")
    await store.queue.enqueue(mine)  # on the queue: it holds the thread's turn
    await store.queue.enqueue(theirs)  # waits behind it
    await store.queue.enqueue(thread_job(store.make_job, ALICE, "alice", "third"))  # waits too

    assert await store.consent.opt_out(ALICE)
    assert await keys_and_items_mentioning(store.redis, ALICE) == []
    assert await keys_and_items_mentioning(store.redis, "alice") == [], "her display name is still stored"
    assert "bob's earlier" in json.dumps(await store.queue.history(SHARED)), "the others' turns stay"
    claimed = await store.queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None and claimed.job["id"] == theirs["id"], "the thread's turn passed to the next speaker"
    assert await store.redis.hget(store.keys.thread(THREAD), "guild") == "800"
    assert await store.redis.llen(store.keys.pending(SHARED)) == 0


async def test_erasing_scripts_refuse_a_conversation_they_were_not_given(
    redis: Redis, keys: Keys, consent: ConsentRegistry
) -> None:
    """The keys of the user's conversations are read before the script runs; one added meanwhile must not be
    skipped, so the script refuses and the caller reads again."""
    await consent.opt_in("1")
    await redis.sadd(keys.conversations("1"), private_conversation("a", "1"), private_conversation("b", "1"))
    scripts = Scripts.register(redis)
    only_a = [keys.conversations("1"), keys.forgets("1"), keys.optin, keys.history(private_conversation("a", "1"))]
    assert await scripts.forget(keys=only_a, args=["1", SHARED_PREFIX, private_conversation("a", "1")]) == -1
    assert await consent.forget("1") == 0  # read afresh: both declared, neither had turns
    assert not await redis.exists(keys.conversations("1"))


async def test_a_dead_letter_in_a_thread_frees_the_thread_and_can_be_replayed_there(
    store: Store,
) -> None:
    for user in ("1", "2"):
        await store.consent.opt_in(user)
    await store.threads.open(THREAD, "800", "900", "1")
    poison = thread_job(store.make_job, "1", "alice", "poison")
    await store.queue.enqueue(poison)
    nxt = thread_job(store.make_job, "2", "bob", "next")
    await store.queue.enqueue(nxt)
    for i in range(3):  # three runners die holding it
        assert await store.queue.claim(f"r{i}", TEST_MODEL, timeout_s=0.1) is not None
        await store.queue.reap(f"r{i}")
    claimed = await store.queue.claim("r9", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None and claimed.job["id"] == nxt["id"], "the thread moved on past the dead letter"
    assert (
        await QueueInspection(store.redis, store.keys).replay(poison["id"], "800") == "pending"
    )  # behind bob's, in order
    assert await store.queue.complete("r9", claimed, "ok", "next")
    again = await store.queue.claim("r9", TEST_MODEL, timeout_s=0.1)
    assert again is not None and again.job["id"] == poison["id"] and again.job["attempts"] == 0


async def test_threads_keep_more_turns_than_private_conversations(
    store: Store,
) -> None:
    await store.consent.opt_in("1")
    await store.threads.open(THREAD, "800", "900", "1")
    for i in range(5):  # 10 messages: the rate limit's
        await store.queue.enqueue(thread_job(store.make_job, "1", "alice", f"t{i}"))
        await answer(store.queue)
        await store.queue.enqueue(store.make_job(user_id="1", content=f"p{i}"))
        await answer(store.queue)
    assert len(await store.queue.history(SHARED)) == 10  # thread_max_turns=40 in the policy
    assert len(await store.queue.history(private_conversation("900", "1"))) == 6  # history_max_turns=6


async def test_per_user_histories_of_older_versions_are_dropped_once(redis: Redis, keys: Keys) -> None:
    legacy = f"{keys.prefix}history:123456789"
    await redis.hset(legacy, "turns", json.dumps([{"role": "user", "content": "from a DM"}]))  # as they were
    kept = keys.history(private_conversation("5", "123456789"))
    await redis.set(kept, "[]")
    assert await drop_legacy_histories(redis, keys) == 1
    assert await drop_legacy_histories(redis, keys) == 0
    assert not await redis.exists(legacy) and await redis.exists(kept)


async def test_a_legacy_job_without_a_conversation_is_answered_in_its_authors_channel(
    redis: Redis, keys: Keys, queue: JobQueue, consent: ConsentRegistry, make_job: MakeJob
) -> None:
    await consent.opt_in("1")
    job = make_job(user_id="1", content="old")
    del job["conversation"], job["lane"]  # type: ignore[misc]
    assert (await queue.enqueue(job)).status == "queued"
    await answer(queue)
    assert len(await queue.history(private_conversation("900", "1"))) == 2
    response = decode_response(await redis.rpop(keys.response))
    assert response["job_id"] == job["id"]
