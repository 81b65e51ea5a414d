"""Several models against a real redis-server: a queue per model, routing, the lanes' rules across models, the
models set every script that moves a job is given, choices, and telling people once about a model nobody serves."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from redis.asyncio import Redis

from runner.engines.choice import BUILTIN_MODEL_NAME, served_model_name
from runner.errors import ModelLoadError
from shared.config.settings import Settings
from shared.queues.job_queue import Completion, JobQueue
from shared.queues.model_names import name_from, parse_model_name
from shared.queues.schemas import Job, decode_job
from shared.queues.served_models import STALE_MODELS, KnownModels, LiveModels, live_runner_beats, runners_per_model
from shared.storage.keys import Keys
from shared.storage.scripts import Scripts
from shared.stores.consent import ConsentRegistry
from shared.stores.model_choice import ModelChoices, Route, route
from shared.stores.queue_inspection import QueueInspection
from shared.stores.shared_threads import SharedThreads
from shared.stores.waiting_status import WaitingStatusReader
from tests.e2e_support import keys_and_items_mentioning
from tests.redis_fixtures import enqueue_opted_in

MakeJob = Callable[..., Job]
ALICE, BOB, CAROL = "424242", "737373", "515151"
"""Ids no job id or key contains by chance, for scans of all of Redis."""


async def queued_ids(redis: Redis, key: str) -> list[str]:
    """The ids of a queue's jobs in the order runners claim them (from the right)."""
    return [decode_job(raw)["id"] for raw in reversed(await redis.lrange(key, 0, -1))]


async def beat(redis: Redis, keys: Keys, runner: str, model: str, answered: int = 0) -> None:
    """A live runner's heartbeat as runner/worker.py writes it."""
    await redis.set(keys.heartbeat("runner", runner), json.dumps({"model": model, "answered_last_minute": answered}))
    await redis.sadd(keys.workers("runner"), runner)
    await redis.sadd(keys.models, model)


# ---- names and routing (no Redis) ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "name"),
    [
        ("builtin", BUILTIN_MODEL_NAME),
        ("echo", "echo"),
        ("echo:0.5", "echo"),
        ("openai:llama3.2", "llama3.2"),
        ("openai:meta-llama/Llama-3.1-8B-Instruct", "meta-llama-llama-3.1-8b-instruct"),
        ("meta-llama/Llama-3.2-1B-Instruct", "llama-3.2-1b-instruct"),
        ("/models/My Model/", "my-model"),
        ("/models/SmolLM2-360M-Instruct.Q4_K_M.gguf", "smollm2-360m-instruct.q4_k_m"),
    ],
)
def test_a_runner_serves_a_name_made_from_model_unless_model_name_says(model: str, name: str) -> None:
    assert served_model_name(Settings(model=model)) == name
    assert served_model_name(Settings(model=model, model_name="mine")) == "mine"


def test_model_names_are_checked_and_made_safe() -> None:
    assert parse_model_name(" SmolLM2-135m ") == "smollm2-135m"
    for bad in ("", "a b", "x}:y", "-x", "a" * 65):
        with pytest.raises(ValueError):
            parse_model_name(bad)
    assert name_from("Llama 3.1: 8B!") == "llama-3.1-8b"
    with pytest.raises(ModelLoadError):
        served_model_name(Settings(model="/"))


def test_a_message_goes_to_the_choice_then_the_server_default_then_default_model_then_the_first_served() -> None:
    served = {"alpha", "beta", "gamma"}

    def via(**given: str | None) -> Route:
        values: dict[str, str | None] = {"choice": None, "server_default": None, "bot_default": "", **given}
        return route(
            choice=values["choice"],
            server_default=values["server_default"],
            bot_default=values["bot_default"] or "",
            served=served,
        )

    assert via(choice="beta", server_default="gamma", bot_default="alpha") == Route("beta", "choice", True)
    assert via(server_default="gamma", bot_default="alpha") == Route("gamma", "server_default", True)
    assert via(bot_default="gamma") == Route("gamma", "bot_default", True)
    assert via() == Route("alpha", "first", True)
    # A choice nobody serves now is passed over, and said so.
    assert via(choice="gone", bot_default="beta") == Route("beta", "bot_default", True, unserved_choice="gone")
    assert route(choice=None, server_default=None, bot_default="", served={"solo"}) == Route("solo", "only", True)
    # Nothing served: the message waits for the first model anyone picked, or for any runner.
    nothing: set[str] = set()
    assert route(choice="gone", server_default="x", bot_default="y", served=nothing) == Route("gone", "choice", False)
    assert route(choice=None, server_default=None, bot_default="y", served=nothing) == Route("y", "bot_default", False)
    assert route(choice=None, server_default=None, bot_default="", served=nothing) == Route(None, "none", False)


# ---- a queue per model -------------------------------------------------------------------------------------


async def test_runners_claim_their_own_models_jobs_and_every_runner_drains_the_legacy_queue(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    a, b = make_job(user_id="1", model="alpha"), make_job(user_id="2", model="beta")
    legacy = make_job(user_id="3")
    del legacy["model"]
    await enqueue_opted_in(redis, keys, queue, [a, b, legacy])
    assert await redis.smembers(keys.models) == {"alpha", "beta"}
    assert await queued_ids(redis, keys.query("alpha")) == [a["id"]]
    assert await queued_ids(redis, keys.legacy_query) == [legacy["id"]]
    claimed = await queue.claim_batch("ra", "alpha", 8, timeout_s=0.1)
    assert [c.job["id"] for c, _ in claimed] == [a["id"], legacy["id"]], "its model's first, then legacy ones"
    assert [c.job["id"] for c, _ in await queue.claim_batch("rb", "beta", 8, timeout_s=0.1)] == [b["id"]]
    assert await queue.claim_batch("rc", "gamma", 8, timeout_s=0.1) == []


async def test_a_lane_keeps_its_order_and_one_message_in_flight_across_models(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    """A user who switches model between messages: the second waits behind the first, then goes to its own
    model's queue; another user's message of the first model is not held up."""
    first, second = make_job(user_id="1", model="alpha"), make_job(user_id="1", model="beta")
    other = make_job(user_id="2", model="alpha")
    await enqueue_opted_in(redis, keys, queue, [first, second, other])
    assert await queue.claim_batch("rb", "beta", 8, timeout_s=0.1) == [], "beta's runner waits for the lane"
    claimed = await queue.claim_batch("ra", "alpha", 8, timeout_s=0.1)
    assert [c.job["id"] for c, _ in claimed] == [first["id"], other["id"]]
    assert await queue.complete("ra", claimed[0][0], "one", "first")
    [(nxt, history)] = await queue.claim_batch("rb", "beta", 8, timeout_s=0.1)
    assert nxt.job["id"] == second["id"] and [t["content"] for t in history] == ["first", "one"]


async def test_a_lanes_next_message_reaches_a_model_this_process_has_not_seen_yet(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob, queue_settings: Settings
) -> None:
    """The completing runner read the models set before the next message's model existed: the script refuses,
    changing nothing, and the runner reads the set again; the message is not lost to a queue nobody claims."""
    first = make_job(user_id="1", model="alpha")
    await enqueue_opted_in(redis, keys, queue, [first])
    [(claimed, _)] = await queue.claim_batch("ra", "alpha", 8, timeout_s=0.1)
    assert await queue.models.names() == ("alpha",)
    second = make_job(user_id="1", model="newcomer")
    await enqueue_opted_in(redis, keys, JobQueue(redis, keys, queue_settings), [second])  # another process
    scripts = Scripts.register(redis)
    keys_given, args_given = queue._complete_call("ra", Completion(claimed, "one", "first"), ("alpha",))
    assert await scripts.complete(keys=keys_given, args=args_given) == STALE_MODELS
    assert await redis.llen(keys.processing("ra")) == 1, "refused before changing anything"
    assert await queue.complete("ra", claimed, "one", "first")
    assert await queued_ids(redis, keys.query("newcomer")) == [second["id"]]
    assert await queue.models.names() == ("alpha", "newcomer")


async def test_retried_reaped_and_released_jobs_go_back_to_their_own_models_queue(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    jobs = [make_job(user_id=str(i), model=model) for i, model in enumerate(["alpha", "beta", "beta"])]
    legacy = make_job(user_id="9")
    del legacy["model"]
    await enqueue_opted_in(redis, keys, queue, [*jobs, legacy])
    [(failing, _), (legacy_claim, _)] = await queue.claim_batch("ra", "alpha", 8, timeout_s=0.1)
    assert await queue.fail("ra", failing, "boom") == "retry"
    assert await queued_ids(redis, keys.query("alpha")) == [jobs[0]["id"]]
    assert await queue.release("ra") == 1
    assert await queued_ids(redis, keys.legacy_query) == [legacy_claim.job["id"]]
    # A beta runner dies holding both beta jobs; an alpha runner reaps them: back to beta's queue.
    assert len(await queue.claim_batch("rb", "beta", 2, timeout_s=0.1)) == 2
    assert await queue.reap("rb") == (2, 0)
    assert sorted(await queued_ids(redis, keys.query("beta"))) == sorted(j["id"] for j in jobs[1:])
    assert await redis.llen(keys.query("alpha")) == 1


async def test_an_edit_or_a_deletion_finds_a_waiting_message_on_its_models_queue(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    first, second = make_job(user_id="1", model="beta"), make_job(user_id="1", model="alpha")
    await enqueue_opted_in(redis, keys, queue, [first, second])
    assert await queue.revise("1", first["id"], "edited") == "revised"
    assert decode_job((await redis.lrange(keys.query("beta"), 0, -1))[0])["content"] == "edited"
    assert await queue.revise("1", first["id"], None) == "withdrawn"
    assert await queued_ids(redis, keys.query("alpha")) == [second["id"]], "the lane moved on to alpha's queue"


async def test_a_dead_letter_is_replayed_onto_its_models_queue(
    redis: Redis, keys: Keys, make_job: MakeJob, queue_settings: Settings
) -> None:
    queue = JobQueue(redis, keys, Settings(max_attempts=1))
    job = make_job(user_id="1", model="beta")
    await enqueue_opted_in(redis, keys, queue, [job])
    [(claimed, _)] = await queue.claim_batch("rb", "beta", 8, timeout_s=0.1)
    assert await queue.fail("rb", claimed, "boom") == "dead"
    assert await QueueInspection(redis, keys).replay(job["id"], None) == "queued"
    assert await queued_ids(redis, keys.query("beta")) == [job["id"]]


# ---- what people see and choose ----------------------------------------------------------------------------


async def test_live_models_are_read_from_the_runners_heartbeats(redis: Redis, keys: Keys) -> None:
    await beat(redis, keys, "r1", "alpha", answered=3)
    await beat(redis, keys, "r2", "alpha")
    await beat(redis, keys, "r3", "beta")
    await redis.sadd(keys.workers("runner"), "dead", "old")
    await redis.set(keys.heartbeat("runner", "old"), "1")  # an older version's runner names no model
    beats = await live_runner_beats(redis, keys)
    assert runners_per_model(beats) == {"alpha": 2, "beta": 1}
    ticks = [0.0]
    live = LiveModels(redis, keys, cache_s=1.0, clock=lambda: ticks[0])
    assert await live.cached() == {"alpha": 2, "beta": 1}
    await redis.delete(keys.heartbeat("runner", "r3"))
    assert await live.cached() == {"alpha": 2, "beta": 1}, "routing reads them at most once a second"
    ticks[0] = 1.5
    assert await live.cached() == {"alpha": 2}


async def test_choices_route_messages_and_only_opted_in_people_may_store_one(redis: Redis, keys: Keys) -> None:
    await beat(redis, keys, "r1", "alpha")
    await beat(redis, keys, "r2", "beta")
    choices = ModelChoices(redis, keys, LiveModels(redis, keys), bot_default="alpha")
    assert not await choices.choose(ALICE, "beta")
    assert await redis.keys("*choice*") == [], "nothing is stored about someone who has not opted in"
    await ConsentRegistry(redis, keys).opt_in(ALICE)
    assert await choices.choose(ALICE, "beta")
    assert await choices.route(ALICE, "800") == Route("beta", "choice", True)
    assert await choices.route(BOB, "800") == Route("alpha", "bot_default", True)
    await choices.set_server_default("800", "beta")
    assert await choices.route(BOB, "800") == Route("beta", "server_default", True)
    assert await choices.route(BOB, None) == Route("alpha", "bot_default", True), "a DM has no server"
    await redis.delete(keys.heartbeat("runner", "r2"))  # beta's last runner is gone
    seen = await choices.look(ALICE, "800")
    assert seen.route == Route("alpha", "bot_default", True, unserved_choice="beta")
    assert (seen.choice, seen.server_default, seen.served) == ("beta", "beta", {"alpha": 1})


async def test_a_shared_thread_tells_whose_choice_holds_there(redis: Redis, keys: Keys) -> None:
    threads = SharedThreads(redis, keys, ttl_s=3600)
    await ConsentRegistry(redis, keys).opt_in(ALICE)
    assert await threads.sharing("5000") == (False, None)
    await threads.open("5000", "800", "900", ALICE)
    assert await threads.sharing("5000") == (True, ALICE)
    await ConsentRegistry(redis, keys).opt_out(ALICE)
    assert await threads.sharing("5000") == (True, None), "its starter gone, nobody's choice holds there"


async def test_optout_erases_the_choice_and_the_users_jobs_on_every_models_queue(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    await beat(redis, keys, "r1", "alpha")
    consent = ConsentRegistry(redis, keys)
    await consent.opt_in(ALICE)
    await ModelChoices(redis, keys, LiveModels(redis, keys), "").choose(ALICE, "alpha")
    mine = [make_job(user_id=ALICE, model="alpha"), make_job(user_id=ALICE, model="beta")]
    theirs = make_job(user_id=BOB, model="beta")
    await enqueue_opted_in(redis, keys, queue, [theirs])
    await consent.opt_out(BOB)  # reads the models set: now it knows alpha and beta
    await enqueue_opted_in(redis, keys, queue, [*mine])
    await redis.lpush(keys.query("beta"), json.dumps({**mine[1], "id": "7"}))  # as if a later model's queue held it
    await redis.sadd(keys.models, "gamma")
    await redis.lpush(keys.query("gamma"), json.dumps({**mine[0], "id": "8", "model": "gamma"}))
    assert await consent.opt_out(ALICE)
    assert await keys_and_items_mentioning(redis, ALICE) == []


async def test_choosing_a_served_model_moves_what_waits_for_one_nobody_serves(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    waiting, behind = make_job(user_id=ALICE, model="gone"), make_job(user_id=ALICE, model="gone")
    served = make_job(user_id=ALICE, model="alpha")
    other = make_job(user_id=BOB, model="gone")
    await enqueue_opted_in(redis, keys, queue, [waiting, behind, served, other])
    scripts = Scripts.register(redis)
    assert len(await scripts.mark_unavailable_told(keys=[keys.query("gone")], args=[])) == 2
    assert await queue.reroute(ALICE, "alpha", {"gone"}) == 2
    [moved] = [decode_job(raw) for raw in await redis.lrange(keys.query("alpha"), 0, -1)]
    assert moved["id"] == waiting["id"] and moved["model"] == "alpha" and "unavailable_told" not in moved
    assert [decode_job(raw)["model"] for raw in await redis.lrange(keys.pending(ALICE), 0, -1)] == ["alpha", "alpha"]
    assert await queued_ids(redis, keys.query("gone")) == [other["id"]], "other people's messages stay"


async def test_each_job_waiting_for_an_unserved_model_is_marked_told_once(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob
) -> None:
    jobs = [make_job(user_id=str(i), model="gone") for i in range(3)]
    await enqueue_opted_in(redis, keys, queue, jobs[:2])
    scripts = Scripts.register(redis)
    told = await scripts.mark_unavailable_told(keys=[keys.query("gone")], args=[])
    assert sorted(decode_job(raw)["id"] for raw in told) == sorted(j["id"] for j in jobs[:2])
    assert await scripts.mark_unavailable_told(keys=[keys.query("gone")], args=[]) == []
    await enqueue_opted_in(redis, keys, queue, jobs[2:])
    assert [
        decode_job(raw)["id"] for raw in await scripts.mark_unavailable_told(keys=[keys.query("gone")], args=[])
    ] == [jobs[2]["id"]]
    # Marked jobs are still answered as usual once a runner comes back.
    claimed = await queue.claim_batch("r1", "gone", 8, timeout_s=0.1)
    assert sorted(c.job["id"] for c, _ in claimed) == sorted(j["id"] for j in jobs)


async def test_stats_and_status_count_per_model(redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob) -> None:
    await beat(redis, keys, "r1", "alpha", answered=60)
    jobs = [make_job(user_id=str(i), model=m) for i, m in enumerate(["alpha", "beta", "beta", "alpha"])]
    await enqueue_opted_in(redis, keys, queue, jobs)
    stats = await QueueInspection(redis, keys).stats()
    assert (stats.waiting, stats.waiting_per_model) == (4, {"alpha": 2, "beta": 2})
    assert (stats.runners, stats.runners_per_model) == (1, {"alpha": 1})
    status = await WaitingStatusReader(redis, keys).status_of("2")
    [lane] = status.lanes
    assert (lane.model, lane.ahead_in_queue, status.served(lane), status.rough_wait_s(lane)) == ("beta", 1, False, None)
    [lane] = (await WaitingStatusReader(redis, keys).status_of("3")).lanes
    assert (lane.model, lane.ahead_in_queue) == ("alpha", 1)


async def test_the_models_set_is_cached_and_read_again_when_a_script_says_stale(redis: Redis, keys: Keys) -> None:
    await redis.sadd(keys.models, "alpha")
    known = KnownModels(redis, keys)
    assert await known.names() == ("alpha",)
    await redis.sadd(keys.models, "beta", "Not A Name")
    assert await known.names() == ("alpha",), "not read again for each call"
    attempts: list[tuple[str, ...]] = []

    async def attempt(names: tuple[str, ...]) -> str:
        attempts.append(names)
        return STALE_MODELS if names == ("alpha",) else "done"

    assert await known.run(attempt, "testing") == "done"
    assert attempts == [("alpha",), ("alpha", "beta")]
