"""Runners that die (SIGKILL) or stall (SIGSTOP) mid-job: every question is still answered exactly once."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest

from shared.queues.schemas import decode_job
from tests.e2e_support import history_key, replies_to
from tests.fault_support import KEYS, Cluster, running_cluster
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

TRIALS = 3
USERS_PER_TRIAL = 6
MESSAGES_PER_USER = 3
JOB_TIME = "echo:0.25"
"""Each runner spends 0.25 s per job, so a kill at a random moment usually finds a job in hand."""


async def history_questions(cluster: Cluster, user_id: str) -> list[str]:
    raw = await cluster.redis.get(history_key(user_id, cluster.fake.channel_id))
    return [turn["content"] for turn in json.loads(raw or "[]") if turn["role"] == "user"]


async def test_runners_killed_at_random_moments_lose_and_repeat_nothing(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    seed = random.randrange(1_000_000)
    rng = random.Random(seed)
    print(f"\nseed={seed}")
    # Generous attempts: a job whose runner is killed several times must still get its real answer.
    async with running_cluster(redis_server, tmp_path, model=JOB_TIME, runners=3, MAX_ATTEMPTS="20") as cluster:
        fake = cluster.fake
        questions: dict[str, tuple[str, str]] = {}  # message id -> (user id, text)
        kills_with_job_in_hand = 0
        for trial in range(TRIALS):
            users = await cluster.opt_in(f"t{trial}-user{i}" for i in range(USERS_PER_TRIAL))
            sent = []
            for n in range(MESSAGES_PER_USER):
                for user in users:
                    text = f"trial {trial} question {n} from {user['username']}"
                    message = await fake.send_message(user, f"Hey Llama, {text}")
                    sent.append(message["id"])
                    questions[message["id"]] = (user["id"], text)
            for _ in range(2):
                await asyncio.sleep(rng.uniform(0.05, 0.6))
                runners = cluster.alive("runner")
                holding = [r for r in runners if await cluster.held_by(r)]
                victim = rng.choice(holding or runners)
                cluster.kill(victim)
                held = await cluster.held_by(victim)
                kills_with_job_in_hand += bool(held)
                print(f"trial {trial}: killed {victim.name} holding {[decode_job(raw)['id'] for raw in held]}")
                cluster.start("runner", MODEL=JOB_TIME, MAX_ATTEMPTS="20")
            await cluster.wait_answered(sent, timeout=30)
        await cluster.wait_drained(timeout=15)
        await asyncio.sleep(1.0)  # room for a late duplicate, were there one

        assert kills_with_job_in_hand > 0, "no kill caught a runner with a job in hand: the test proved nothing"
        cluster.assert_each_answered_once(questions)
        for message_id, (_, text) in questions.items():
            assert [p["content"] for p in replies_to(fake, message_id)] == [f"echo: {text}"]
        # Completion happened once per job: the history holds each question once.
        for user_id in {user_id for user_id, _ in questions.values()}:
            asked = [text for uid, text in questions.values() if uid == user_id]
            assert sorted(await history_questions(cluster, user_id)) == sorted(asked)
        assert await cluster.redis.llen(KEYS.dead) == 0


async def test_a_stalled_runner_whose_job_was_taken_back_drops_its_late_answer(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    # A runner frozen past its heartbeat (a GC pause, a stuck GPU, SIGSTOP) looks dead: its job is requeued and
    # answered by another runner. When it wakes up and finishes, its completion must not count a second time.
    async with running_cluster(redis_server, tmp_path, model="echo:1.0", runners=2) as cluster:
        [user] = await cluster.opt_in(["sleepy"])
        message = await cluster.fake.send_message(user, "Hey Llama, are you awake?")
        claimed = f"job {message['id']} of user {user['id']} claimed"
        stalled = await cluster.wait_for_any_log(cluster.alive("runner"), claimed)
        cluster.pause(stalled)
        try:
            await cluster.wait_answered([message["id"]], timeout=20)
        finally:
            cluster.resume(stalled)
        taken_back = f"job {message['id']} was taken back from this runner"
        finished = [taken_back, f"job {message['id']} of user {user['id']} answered"]
        await cluster.wait_for_log_of(stalled, finished, timeout=20)
        await cluster.wait_drained(timeout=10)
        await asyncio.sleep(0.5)

        cluster.assert_each_answered_once([message["id"]])
        assert await history_questions(cluster, user["id"]) == ["are you awake?"], "the job was completed twice"
        assert taken_back in stalled.log()


async def test_a_runner_killed_while_answering_in_a_shared_thread_loses_nothing_and_keeps_the_order(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    async with running_cluster(redis_server, tmp_path, model="echo:0.5", runners=2) as cluster:
        fake = cluster.fake
        alice, bob = await cluster.opt_in(["alice", "bob"])
        command = await fake.send_message(alice, "!chat kill test")
        await fake.wait_for_posts(1, channel_id=command["id"])  # the greeting: the thread is registered
        thread_id = command["id"]
        sent = [
            await fake.send_message(user, f"thread message {n}", channel_id=thread_id)
            for n, user in enumerate((alice, bob, alice))
        ]
        first = sent[0]["id"]
        victim = await cluster.wait_for_any_log(cluster.alive("runner"), f"job {first} of user {alice['id']} claimed")
        cluster.kill(victim)
        await cluster.wait_answered([m["id"] for m in sent], timeout=30)
        await cluster.wait_drained(timeout=10)
        await asyncio.sleep(0.5)  # room for a late duplicate, were there one

        cluster.assert_each_answered_once([m["id"] for m in sent])
        replies = [replies_to(fake, m["id"])[0] for m in sent]
        speakers = ("alice", "bob", "alice")
        assert [r["content"] for r in replies] == [f"echo: {speakers[n]}: thread message {n}" for n in range(3)]
        assert [int(r["id"]) for r in replies] == sorted(int(r["id"]) for r in replies), "answered out of order"
        turns = json.loads(await cluster.redis.get(KEYS.history(f"thread:{thread_id}")) or "[]")
        asked = [(turn["name"], turn["content"]) for turn in turns if turn["role"] == "user"]
        assert asked == [("alice", "thread message 0"), ("bob", "thread message 1"), ("alice", "thread message 2")]
