"""Runners in front of an OpenAI-compatible server, as processes: a user answered through `transformers serve`;
against the stand-in, a server that cannot be used stops a starting runner with one line, and one that goes away,
fails, refuses a job or is slow costs no job, no attempt and no heartbeat."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from pathlib import Path

import pytest

from shared.config.settings import Settings
from shared.queues.job_queue import APOLOGY_TEXT
from shared.queues.model_names import name_from
from shared.queues.schemas import decode_job
from tests.e2e_support import history_key, replies_to
from tests.fault_support import KEYS, Cluster, running_cluster
from tests.openai_server import ServedModel, streamed_answer
from tests.openai_stand_in import OpenAIStandIn, answer_text
from tests.redis_server import RedisServer, free_port
from tests.system import PROJECT_ROOT
from tests.test_openai_engine import wait_until

pytestmark = pytest.mark.e2e

KEY = "sk-e2e-0123456789abcdefghijklmnop"


def claims(log: str, message_id: str) -> list[str]:
    return [line for line in log.splitlines() if f"job {message_id} of user" in line and "claimed" in line]


def assert_quiet(cluster: Cluster) -> None:
    """No process logged an error (asyncio's "Task was destroyed" among them) or the API key."""
    logs = cluster.system.logs()
    assert " ERROR " not in logs and KEY not in logs, logs


def answer_to(cluster: Cluster, message_id: str) -> str:
    """The content of the bot's one reply to a message as it stands now (streamed answers are edited in)."""
    [reply] = replies_to(cluster.fake, message_id)
    return str(cluster.fake.message(reply["id"])["content"])


def body_of(server: OpenAIStandIn, text: str) -> dict[str, object]:
    """The last request the stand-in got whose new message was `text` (as the bot queued it)."""
    return [b for b in server.bodies if b["messages"][-1]["content"].endswith(text)][-1]  # type: ignore[index]


# ---- against transformers serve ----------------------------------------------------------------------


async def test_a_user_is_answered_by_a_runner_in_front_of_transformers_serve(
    redis_server: RedisServer, openai_server: ServedModel, tmp_path: Path
) -> None:
    async with running_cluster(
        redis_server, tmp_path, model=f"openai:{openai_server.model}", OPENAI_BASE_URL=openai_server.base_url
    ) as cluster:
        [runner] = cluster.alive("runner")
        assert f"diagnostic passed: model=openai:{openai_server.model}" in runner.log()
        [alice] = await cluster.opt_in(["alice"])
        question = await cluster.fake.send_message(alice, "Hey Llama, what is the capital of France?")
        await cluster.wait_answered([question["id"]], timeout=60)
        await cluster.wait_drained(timeout=30)
        reply = answer_to(cluster, question["id"])
        turns = json.loads(await cluster.redis.get(history_key(alice["id"], cluster.fake.channel_id)) or "[]")
    # The answer the server gives the same conversation (greedy: TEMPERATURE=0, MAX_NEW_TOKENS=24).
    settings = Settings()
    messages = [{"role": "system", "content": settings.system_prompt}, {"role": "user", "content": turns[0]["content"]}]
    expected, _ = await asyncio.to_thread(streamed_answer, openai_server, messages, 24, 0.0, settings.top_p)
    assert expected.strip() and reply == expected.strip()
    assert turns[1] == {"role": "assistant", "content": expected.strip()}
    assert " ERROR " not in cluster.system.logs()


# ---- start-up --------------------------------------------------------------------------------------------


@pytest.fixture
async def stand_in() -> AsyncIterator[OpenAIStandIn]:
    server = OpenAIStandIn(api_key=KEY)
    await server.start()
    yield server
    await server.stop()


async def start_runner_alone(base_url: str, model: str, key: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(PROJECT_ROOT),
        "MODEL": f"openai:{model}",
        "OPENAI_BASE_URL": base_url,
        "OPENAI_API_KEY": key,
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    # In a thread: the stand-in answering the runner runs on this test's event loop.
    return await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "runner"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60
    )


@pytest.mark.parametrize(
    ("case", "said"),
    [
        ("down", "is unreachable (ConnectError)"),
        ("wrong key", "refused OPENAI_API_KEY (HTTP 401)"),
        ("unknown model", "does not serve model 'no-such-model' (HTTP 404"),
    ],
)
async def test_a_runner_whose_server_cannot_be_used_exits_with_one_clear_line(
    stand_in: OpenAIStandIn, tmp_path: Path, case: str, said: str
) -> None:
    base_url = f"http://127.0.0.1:{free_port()}/v1" if case == "down" else stand_in.base_url
    model = "no-such-model" if case == "unknown model" else stand_in.model
    key = "sk-wrong-9876543210zyxwvutsrqpon" if case == "wrong key" else KEY
    result = await start_runner_alone(base_url, model, key, tmp_path)
    assert result.returncode == 1, result.stderr
    [line] = [line for line in result.stderr.splitlines() if "cannot start" in line]
    assert said in line and base_url in line
    output = result.stdout + result.stderr
    assert "Traceback" not in output and key not in output and KEY not in output


# ---- faults while serving, against the stand-in ----------------------------------------------------------


def cluster_for(
    redis_server: RedisServer, server: OpenAIStandIn, log_dir: Path, **env: str
) -> AbstractAsyncContextManager[Cluster]:
    """A deployment whose runner serves the stand-in's model, with the key it wants."""
    return running_cluster(
        redis_server,
        log_dir,
        model=f"openai:{server.model}",
        OPENAI_BASE_URL=server.base_url,
        OPENAI_API_KEY=KEY,
        **env,
    )


async def test_a_server_gone_mid_answer_stops_claims_and_loses_no_job_and_no_attempt(
    redis_server: RedisServer, stand_in: OpenAIStandIn, tmp_path: Path
) -> None:
    stand_in.chunk_delay_s = 0.1
    async with cluster_for(redis_server, stand_in, tmp_path) as cluster:
        [runner] = cluster.alive("runner")
        alice, bob = await cluster.opt_in(["alice", "bob"])
        first = await cluster.fake.send_message(alice, "Hey Llama, tell me about the trains of Boston please")
        sent = stand_in.chunks_sent
        await wait_until(lambda: stand_in.chunks_sent >= sent + 3)  # mid-answer
        await stand_in.stop()
        await cluster.system.wait_for_log(runner, "is unreachable")
        await cluster.system.wait_for_log(runner, "claiming none")
        second = await cluster.fake.send_message(bob, "Hey Llama, and what about the buses?")
        await wait_until(lambda: second["id"] in cluster.accepted())
        await asyncio.sleep(1.5)
        # Bob's job waits on the queue for a runner that can answer it; Alice's stays held, no attempt counted.
        assert [
            decode_job(raw)["id"] for raw in await cluster.redis.lrange(KEYS.query(name_from(stand_in.model)), 0, -1)
        ] == [second["id"]]
        assert [(job["id"], job["attempts"]) for job in map(decode_job, await cluster.held_by(runner))] == [
            (first["id"], 0)
        ]
        await stand_in.start()
        await cluster.wait_answered([first["id"], second["id"]], timeout=30)
        await cluster.wait_drained(timeout=10)
        cluster.assert_each_answered_once([first["id"], second["id"]])
        for message in (first, second):
            sent = body_of(stand_in, message["content"].removeprefix("Hey Llama, "))
            assert answer_to(cluster, message["id"]) == answer_text(sent)
            assert [line.endswith("(attempt 1)") for line in claims(runner.log(), message["id"])] == [True]
        log = runner.log()
        assert log.count("is unreachable") == 1 and log.count("answers again") == 1
        assert log.count("claiming none") == 1 and log.count("takes jobs again") == 1
        assert not await cluster.redis.llen(KEYS.dead)
    assert_quiet(cluster)


async def test_server_errors_are_retried_and_the_answer_still_comes(
    redis_server: RedisServer, stand_in: OpenAIStandIn, tmp_path: Path
) -> None:
    async with cluster_for(redis_server, stand_in, tmp_path) as cluster:
        [runner] = cluster.alive("runner")
        [alice] = await cluster.opt_in(["alice"])
        stand_in.next_statuses.extend([500, 502])
        question = await cluster.fake.send_message(alice, "Hey Llama, are you there?")
        await cluster.wait_answered([question["id"]], timeout=30)
        await cluster.wait_drained(timeout=10)
        assert answer_to(cluster, question["id"]) == answer_text(stand_in.bodies[-1])
        assert stand_in.statuses[-3:] == [500, 502, 200]
        assert len(claims(runner.log(), question["id"])) == 1
        assert "retry 1 of 3" in runner.log() and "retry 2 of 3" in runner.log()
    assert_quiet(cluster)


async def test_a_job_the_server_refuses_is_dead_lettered_with_an_apology_and_the_others_answered(
    redis_server: RedisServer, stand_in: OpenAIStandIn, tmp_path: Path
) -> None:
    stand_in.refuse_containing["far too long"] = 400
    async with cluster_for(redis_server, stand_in, tmp_path, MAX_ATTEMPTS="2") as cluster:
        poisoner, bystander = await cluster.opt_in(["poisoner", "bystander"])
        refused = await cluster.fake.send_message(poisoner, "Hey Llama, here is a message far too long")
        question = await cluster.fake.send_message(bystander, "Hey Llama, what is the capital of France?")
        await cluster.wait_answered([refused["id"], question["id"]], timeout=30)
        await cluster.wait_drained(timeout=10)
        assert answer_to(cluster, refused["id"]) == APOLOGY_TEXT
        assert answer_to(cluster, question["id"]) == answer_text(body_of(stand_in, "what is the capital of France?"))
        [dead] = [json.loads(raw) for raw in await cluster.redis.lrange(KEYS.dead, 0, -1)]
        assert (dead["id"], dead["attempts"]) == (refused["id"], 2)
        assert "HTTP 400: this request cannot be answered (far too long)" in dead["error"]
        assert stand_in.statuses.count(400) == 2  # one request per attempt: a 4xx is not retried in the engine
    assert_quiet(cluster)


async def test_a_slow_server_does_not_stop_the_heartbeat(
    redis_server: RedisServer, stand_in: OpenAIStandIn, tmp_path: Path
) -> None:
    async with cluster_for(redis_server, stand_in, tmp_path) as cluster:
        [runner] = cluster.alive("runner")
        heartbeat = KEYS.heartbeat("runner", cluster.worker_ids[runner.name])
        [alice] = await cluster.opt_in(["alice"])
        stand_in.delay_before_answer_s = 4.0  # four heartbeat TTLs (HEARTBEAT_TTL_S=1) before the first byte
        question = await cluster.fake.send_message(alice, "Hey Llama, take your time")
        beats = []
        deadline = time.monotonic() + 30
        while not replies_to(cluster.fake, question["id"]):
            assert time.monotonic() < deadline, runner.log()
            beats.append(await cluster.redis.exists(heartbeat))
            await asyncio.sleep(0.1)
        assert len(beats) > 30 and all(beats)
        assert len(claims(runner.log(), question["id"])) == 1
        await cluster.wait_drained(timeout=10)
        assert answer_to(cluster, question["id"]) == answer_text(stand_in.bodies[-1])
        assert "is gone" not in runner.log() and "unreachable" not in runner.log()
    assert_quiet(cluster)
