"""Metrics and health of the real processes: what each /metrics holds after an exchange, and /healthz through a
model loading and a Redis outage."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.e2e_support import wait_reply
from tests.fake_discord import FakeDiscord
from tests.observability_support import healthz, metrics_text, scrape, value, wait_health
from tests.redis_server import RedisServer, free_port
from tests.system import System, base_env

pytestmark = pytest.mark.e2e
PROCESSES = ("runner", "updater", "bot")


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    directory = tmp_path / "redis"
    directory.mkdir()
    server = RedisServer(directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()


class Observed:
    def __init__(self, fake: FakeDiscord, system: System, ports: dict[str, int]) -> None:
        self.fake = fake
        self.system = system
        self.ports = ports


@pytest_asyncio.fixture
async def observed(own_redis: RedisServer, tmp_path: Path) -> AsyncIterator[Observed]:
    """Runner (echo), updater and bot, each serving /metrics and /healthz on a port of its own."""
    fake = FakeDiscord()
    await fake.start()
    env = base_env(
        redis_url=own_redis.url, api_base=fake.api_base, gateway_url=fake.gateway_url, token=fake.token, model="echo"
    )
    system = System(env, tmp_path)
    ports = {name: free_port() for name in PROCESSES}
    try:
        started = {name: system.start(name, METRICS_PORT=str(ports[name])) for name in PROCESSES}
        await fake.wait_identified(timeout=60)
        await system.wait_for_log(started["runner"], "taking jobs", timeout=60)
        await system.wait_for_log(started["updater"], "posting as", timeout=60)
        yield Observed(fake, system, ports)
    finally:
        codes = await asyncio.to_thread(system.stop_all)
        logs = system.logs()
        await fake.stop()
    assert all(code == 0 for code in codes.values()), f"exit codes {codes}\n{logs}"
    assert "Traceback" not in logs, logs


async def test_each_process_exports_its_series_after_one_exchange(observed: Observed) -> None:
    fake, ports = observed.fake, observed.ports
    for name in PROCESSES:
        assert await wait_health(ports[name], 200) == "ok\n"
    alice = fake.add_user("alice")
    optin = await fake.send_message(alice, "!optin")
    await wait_reply(fake, optin["id"])
    await fake.send_message(alice, "I saw a llama at the zoo")  # not addressed to the bot: not counted
    asked_at = time.time()
    question = await fake.send_message(alice, "Hey Llama, what is a llama?")
    reply = await wait_reply(fake, question["id"])
    waited_s = time.time() - asked_at

    deadline = time.monotonic() + 15  # the queue gauges are refreshed every few seconds, not per scrape
    while value(bot := await scrape(ports["bot"]), "llamabot_workers_alive", role="updater") != 1:
        assert time.monotonic() < deadline, "the bot never refreshed its queue gauges"
        await asyncio.sleep(0.2)
    runner, updater = await scrape(ports["runner"]), await scrape(ports["updater"])
    scraped_s = time.time() - asked_at

    outcomes = {"queued": 1, "pending": 0, "rate_limited": 0, "full": 0, "busy": 0, "not_opted_in": 0}
    for outcome, count in outcomes.items():
        assert value(bot, "llamabot_messages_total", outcome=outcome) == count, outcome
    assert value(bot, "llamabot_discord_requests_total", process="bot", status="200") >= 1  # the opt-in reply
    assert value(bot, "llamabot_discord_budget_wait_seconds_count") >= 1
    assert value(bot, "llamabot_workers_alive", role="runner") == 1
    for queue in ("query:echo", "processing", "response", "dead"):
        assert value(bot, "llamabot_queue_depth", queue=queue) == 0, queue

    jobs = {"answered": 1, "failed": 0, "dead_lettered": 0, "dropped_late": 0}
    for outcome, count in jobs.items():
        assert value(runner, "llamabot_jobs_total", outcome=outcome) == count, outcome
    assert value(runner, "llamabot_generated_tokens_total", model="echo") == len(reply["content"].split())
    assert value(runner, "llamabot_generation_seconds_count", model="echo") == 1
    assert value(runner, "llamabot_batch_rows", model="echo") == 0
    assert value(runner, "llamabot_queue_wait_seconds_count") == 1
    assert 0 <= value(runner, "llamabot_queue_wait_seconds_sum") < waited_s  # type: ignore[operator]

    assert value(updater, "llamabot_reply_seconds_count") == 1
    # From the message's snowflake time (whole milliseconds) to the post: after the reply reached the fake (seen
    # by polling every 10 ms), before the scrape.
    reply_s = value(updater, "llamabot_reply_seconds_sum")
    assert reply_s is not None and waited_s - 0.02 <= reply_s <= scraped_s + 0.002, (reply_s, waited_s, scraped_s)
    assert value(updater, "llamabot_discord_requests_total", process="updater", status="200") >= 1
    assert value(updater, "llamabot_discord_budget_wait_seconds_count") >= 1
    # Each process exports its own series only.
    assert not any(name.startswith("llamabot_jobs") for name, _ in bot)
    assert not any(name.startswith("llamabot_messages") for name, _ in runner | updater)

    for name in PROCESSES:
        text = await metrics_text(ports[name])
        for private in (alice["id"], question["id"], question["channel_id"], fake.guild_id, fake.token):
            assert private not in text, f"{name}'s /metrics shows {private}"


async def test_health_is_503_with_the_reason_while_redis_is_away_then_200(
    observed: Observed, own_redis: RedisServer
) -> None:
    ports = observed.ports
    for name in PROCESSES:
        await wait_health(ports[name], 200)
    own_redis.stop()
    try:
        for name in PROCESSES:
            body = await wait_health(ports[name], 503, timeout=10, contains="Redis unreachable")
            assert body.count("\n") == 1, body  # one line
    finally:
        own_redis.start()
    for name in PROCESSES:
        assert await wait_health(ports[name], 200, timeout=30) == "ok\n"


async def test_a_runner_is_503_until_its_model_is_loaded_and_checked(own_redis: RedisServer, tmp_path: Path) -> None:
    env = base_env(redis_url=own_redis.url, api_base="", gateway_url="", token="unused", model="echo:3")
    system = System({k: v for k, v in env.items() if v}, tmp_path)
    port = free_port()
    runner = system.start("runner", METRICS_PORT=str(port))
    try:
        # echo:3 spends 3 s on the start-up diagnostic: the engine is not ready meanwhile.
        body = await wait_health(port, 503, timeout=30, contains="loading")
        assert "taking jobs" not in runner.log(), body
        await system.wait_for_log(runner, "taking jobs", timeout=30)
        assert await wait_health(port, 200, timeout=10) == "ok\n"
        assert (await healthz(port))[0] == 200
    finally:
        codes = await asyncio.to_thread(system.stop_all)
    assert codes == {"runner0": 0}, system.logs()
