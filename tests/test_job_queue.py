"""The queue's scripts against a real redis-server: order, fairness, completion, failure and reaping."""

from __future__ import annotations

from collections.abc import Callable

from redis.asyncio import Redis

from shared.config.secret import Secret
from shared.queues.conversation_ids import private_conversation
from shared.queues.job_queue import APOLOGY_TEXT, JobQueue
from shared.queues.responses import ResponseQueue
from shared.queues.schemas import InteractionRef, Job, decode_response
from shared.storage.heartbeat import Heartbeat
from shared.storage.keys import Keys
from shared.stores.consent import ConsentRegistry
from shared.stores.queue_inspection import QueueInspection
from tests.redis_fixtures import TEST_MODEL

MakeJob = Callable[..., Job]


async def opt_in(redis: Redis, keys: Keys, *users: str) -> None:
    consent = ConsentRegistry(redis, keys)
    for user in users:
        await consent.opt_in(user)


async def test_job_of_user_who_has_not_opted_in_is_refused_and_nothing_is_stored(
    redis: Redis, queue: JobQueue, make_job: MakeJob
) -> None:
    result = await queue.enqueue(make_job(user_id="7"))
    assert result.status == "not_opted_in"
    assert await redis.keys("*") == []


async def test_same_message_is_queued_once(redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob) -> None:
    await opt_in(redis, keys, "1")
    job = make_job(user_id="1")
    assert (await queue.enqueue(job)).status == "queued"
    assert (await queue.enqueue(job)).status == "duplicate"
    assert await redis.llen(keys.query(TEST_MODEL)) == 1


async def test_second_message_waits_for_the_first_and_sees_it_in_history(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "1")
    first, second = make_job(user_id="1", content="first?"), make_job(user_id="1", content="second?")
    assert (await queue.enqueue(first)).status == "queued"
    result = await queue.enqueue(second)
    assert (result.status, result.waiting) == ("pending", 1)
    assert await redis.llen(keys.query(TEST_MODEL)) == 1

    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None and claimed.job["id"] == first["id"]
    assert await queue.claim("r1", TEST_MODEL, timeout_s=0.1) is None  # the second is not claimable yet
    assert await queue.complete("r1", claimed, "answer one", "first?")

    nxt = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert nxt is not None and nxt.job["id"] == second["id"]
    assert await queue.history(private_conversation("900", "1")) == [
        {"role": "user", "content": "first?"},
        {"role": "assistant", "content": "answer one"},
    ]


async def test_users_are_served_in_arrival_order_whatever_one_of_them_sends(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "spammer", "a", "b")
    for i in range(3):
        await queue.enqueue(make_job(user_id="spammer", content=f"spam {i}"))
    await queue.enqueue(make_job(user_id="a"))
    await queue.enqueue(make_job(user_id="b"))
    order = []
    while (claimed := await queue.claim("r1", TEST_MODEL, timeout_s=0.1)) is not None:
        order.append(claimed.job["user_id"])
        await queue.complete("r1", claimed, "ok", claimed.job["content"])
    assert order[:3] == ["spammer", "a", "b"]
    assert order.count("spammer") == 3


async def test_pending_messages_past_the_bound_are_refused_not_dropped(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "1")
    statuses = [(await queue.enqueue(make_job(user_id="1"))).status for _ in range(5)]
    assert statuses == ["queued", "pending", "pending", "pending", "full"]
    assert await redis.llen(keys.pending("1")) == 3


async def test_history_keeps_the_newest_whole_exchanges(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "1")
    for i in range(5):
        await queue.enqueue(make_job(user_id="1", content=f"q{i}"))
        claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
        assert claimed is not None
        await queue.complete("r1", claimed, f"a{i}", f"q{i}")
    turns = await queue.history(private_conversation("900", "1"))
    assert [t["content"] for t in turns] == ["q2", "a2", "q3", "a3", "q4", "a4"]  # history_max_turns=6
    assert 0 < await redis.ttl(keys.history(private_conversation("900", "1"))) <= 3600


async def test_keys_left_after_a_full_job_are_exactly_the_users_state(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "1")
    await queue.enqueue(make_job(user_id="1"))
    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None
    await queue.complete("r1", claimed, "hi", "hello")
    responses = ResponseQueue(redis, keys)
    posted = await responses.claim("u1", timeout_s=0.1)
    assert posted is not None
    await responses.record_posted(posted.response["job_id"], 0, "555")
    await responses.ack("u1", posted)
    assert sorted(await redis.keys("*")) == sorted(
        [
            keys.optin,
            keys.history(private_conversation("900", "1")),
            keys.conversations("1"),
            keys.seen("1"),
            keys.rate("1"),
            keys.posted(claimed.job["id"]),
            keys.models,  # the models jobs were queued for: whose queues the scripts that move jobs are given
        ]
    )


async def test_complete_is_refused_once_the_job_was_taken_back(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "1")
    await queue.enqueue(make_job(user_id="1"))
    claimed = await queue.claim("slow", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None
    assert await queue.reap("slow") == (1, 0)  # no heartbeat: taken for dead
    assert not await queue.complete("slow", claimed, "late answer", "hello")
    assert await redis.llen(keys.response) == 0


async def test_dead_runner_job_is_requeued_exactly_once(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "1")
    job = make_job(user_id="1")
    await queue.enqueue(job)
    dead_runner = Heartbeat(redis, keys, "runner", "dead", ttl_s=60)
    await dead_runner.beat()
    assert await queue.claim("dead", TEST_MODEL, timeout_s=0.1) is not None
    live = Heartbeat(redis, keys, "runner", "live", ttl_s=60)
    await live.beat()
    assert await live.silent_peers() == []
    assert await queue.reap("dead") is None  # heartbeat still there: alive

    await redis.delete(keys.heartbeat("runner", "dead"))  # time-travel: its heartbeat expired
    assert await live.silent_peers() == ["dead"]
    assert await queue.reap("dead") == (1, 0)
    assert await queue.reap("dead") == (0, 0)  # a second reaper finds nothing
    assert await redis.llen(keys.query(TEST_MODEL)) == 1
    assert await live.silent_peers() == []
    again = await queue.claim("live", TEST_MODEL, timeout_s=0.1)
    assert again is not None and again.job["id"] == job["id"] and again.job["attempts"] == 1


async def test_job_is_dead_lettered_with_an_apology_after_max_attempts(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "1")
    poison, nxt = make_job(user_id="1", content="poison"), make_job(user_id="1", content="next")
    await queue.enqueue(poison)
    await queue.enqueue(nxt)
    outcomes = []
    for _ in range(3):
        claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
        assert claimed is not None and claimed.job["id"] == poison["id"]
        outcomes.append(await queue.fail("r1", claimed, "RuntimeError"))
    assert outcomes == ["retry", "retry", "dead"]
    [dead] = await QueueInspection(redis, keys).dead_letters(guild_id=None)
    assert (dead.job_id, dead.user_id, dead.attempts, dead.error) == (poison["id"], "1", 3, "RuntimeError")
    apology = decode_response(await redis.rpop(keys.response))
    assert (apology["kind"], apology["job_id"], apology["content"]) == ("apology", poison["id"], APOLOGY_TEXT)
    following = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)  # the user's next message goes on
    assert following is not None and following.job["id"] == nxt["id"]


async def test_reaper_dead_letters_a_job_that_keeps_killing_runners(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "1")
    job = make_job(user_id="1")
    await queue.enqueue(job)
    results = []
    for i in range(3):
        assert await queue.claim(f"r{i}", TEST_MODEL, timeout_s=0.1) is not None
        results.append(await queue.reap(f"r{i}"))
    assert results == [(1, 0), (1, 0), (0, 1)]
    assert await redis.llen(keys.query(TEST_MODEL)) == 0
    assert not await redis.exists(keys.inflight("1"))
    assert decode_response(await redis.rpop(keys.response))["kind"] == "apology"


async def test_release_gives_jobs_back_untried(redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob) -> None:
    await opt_in(redis, keys, "1", "2")
    await queue.enqueue(make_job(user_id="1"))
    await queue.enqueue(make_job(user_id="2"))
    assert len(await queue.claim_waiting("r1", TEST_MODEL, 5)) == 2
    assert await queue.release("r1") == 2
    claimed = await queue.claim_waiting("r2", TEST_MODEL, 5)
    assert [c.job["attempts"] for c in claimed] == [0, 0]


async def test_opt_out_while_in_flight_posts_nothing_and_stores_nothing(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await opt_in(redis, keys, "1", "2")
    await queue.enqueue(make_job(user_id="1"))
    await queue.enqueue(make_job(user_id="1"))
    await queue.enqueue(make_job(user_id="2"))
    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None and claimed.job["user_id"] == "1"
    assert await ConsentRegistry(redis, keys).opt_out("1")
    assert await queue.complete("r1", claimed, "answer", "question")
    assert await redis.llen(keys.response) == 0
    for key in await redis.keys("*"):
        assert not key.endswith(":1"), key
        if await redis.type(key) == "list":
            assert all('"user_id":"1"' not in item for item in await redis.lrange(key, 0, -1))


async def test_an_ask_keeps_its_interaction_through_retries_completion_and_the_apology(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    """An `/ask` answer (or apology) reaches the updater with its interaction, whichever script made it."""
    await opt_in(redis, keys, "1")
    interaction: InteractionRef = {"application_id": "9", "token": Secret("tok-en-value"), "expires_at": 5e9}
    asked, dying = make_job(user_id="1"), make_job(user_id="1")
    asked["interaction"] = dying["interaction"] = interaction
    await queue.enqueue(asked)
    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None and await queue.fail("r1", claimed, "RuntimeError") == "retry"
    claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
    assert claimed is not None and claimed.job["interaction"]["token"].reveal() == "tok-en-value"
    await queue.enqueue(dying)
    assert await queue.complete("r1", claimed, "the answer", "question")
    answer = decode_response(await redis.rpop(keys.response))
    assert answer["kind"] == "answer" and answer["interaction"]["token"] == interaction["token"]
    for _ in range(3):
        claimed = await queue.claim("r1", TEST_MODEL, timeout_s=0.1)
        assert claimed is not None and claimed.job["id"] == dying["id"]
        await queue.fail("r1", claimed, "RuntimeError")
    apology = decode_response(await redis.rpop(keys.response))
    assert apology["kind"] == "apology" and apology["interaction"] == interaction
