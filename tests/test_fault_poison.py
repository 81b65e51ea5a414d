"""A poison job, one the model raises on every time: tried MAX_ATTEMPTS times, dead-lettered, the user told."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.config.settings import Settings
from shared.queues.conversation_ids import private_conversation
from shared.queues.job_queue import APOLOGY_TEXT, JobQueue
from shared.queues.jobs import new_job
from tests.e2e_support import replies_to
from tests.fault_support import KEYS, running_cluster
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

MAX_ATTEMPTS = 3


async def test_poison_job_is_dead_lettered_with_an_apology_while_others_are_answered(
    redis_server: RedisServer, tiny_model_dir: Path, tmp_path: Path
) -> None:
    async with running_cluster(
        redis_server, tmp_path, model=str(tiny_model_dir), MAX_ATTEMPTS=str(MAX_ATTEMPTS)
    ) as cluster:
        fake = cluster.fake
        poisoner, bystander = await cluster.opt_in(["poisoner", "bystander"])
        # A job carrying a per-job override the model refuses: transformers' generate() raises ValueError for
        # max_new_tokens=0, inside the real engine, on every try. The Discord message it answers is ordinary.
        message = await fake.send_message(poisoner, "just chatting, not for the bot")
        poison = new_job(
            message["id"], poisoner["id"], message["channel_id"], "what is a llama?", guild_id=fake.guild_id
        )
        poison["max_new_tokens"] = 0
        queue = JobQueue(cluster.redis, KEYS, Settings(max_attempts=MAX_ATTEMPTS))
        assert (await queue.enqueue(poison)).status == "queued"
        question = await fake.send_message(bystander, "Hey Llama, what is the capital of France?")

        await cluster.wait_answered([message["id"], question["id"]], timeout=30)
        await cluster.wait_drained(timeout=10)

        [apology] = replies_to(fake, message["id"])
        assert apology["content"] == APOLOGY_TEXT
        [answer] = replies_to(fake, question["id"])
        assert answer["content"] and answer["content"] != APOLOGY_TEXT
        [dead] = [json.loads(raw) for raw in await cluster.redis.lrange(KEYS.dead, 0, -1)]
        assert (dead["id"], dead["attempts"]) == (message["id"], MAX_ATTEMPTS)
        assert "max_new_tokens" in dead["error"]
        [runner] = cluster.alive("runner")
        failures = [
            line for line in runner.log().splitlines() if f"job {message['id']} of user" in line and "failed" in line
        ]
        assert len(failures) == MAX_ATTEMPTS, failures
        assert not await cluster.redis.exists(KEYS.inflight(poisoner["id"]))
        assert (
            await queue.history(private_conversation(cluster.fake.channel_id, poisoner["id"])) == []
        )  # a failed job leaves no half exchange behind
