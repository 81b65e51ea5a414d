"""The observability server and its pieces, in-process: routes, health verdicts, reply times, shard settings."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, Counter

from bot.outbox import Outbox
from launcher.supervisor import START_ORDER, metrics_port_of
from shared.config.settings import Settings
from shared.errors import SettingsError
from shared.runtime.observability.metrics import registry_for
from shared.runtime.observability.server import CHECK_TIMEOUT_S, Health, ObservabilityServer
from tests.redis_server import free_port
from updater.delivery import DISCORD_EPOCH_S, asked_at


async def get(port: int, request: bytes) -> tuple[str, str]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    answer = (await reader.read()).decode()
    writer.close()
    head, _, body = answer.partition("\r\n\r\n")
    return head.split("\r\n")[0], body


async def test_routes_answer_metrics_health_and_nothing_else() -> None:
    registry = CollectorRegistry()
    Counter("llamabot_things", "Things.", registry=registry).inc(3)
    health = Health()
    problems: list[str | None] = [None]

    async def check() -> str | None:
        return problems[0]

    health.add("thing", check)
    server = ObservabilityServer(registry, health, free_port(), host="127.0.0.1")
    await server.start()
    try:
        status, body = await get(server.port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        assert status == "HTTP/1.1 200 OK" and "llamabot_things_total 3.0" in body
        assert await get(server.port, b"GET /healthz HTTP/1.1\r\n\r\n") == ("HTTP/1.1 200 OK", "ok\n")
        problems[0] = "the thing is broken"
        assert await get(server.port, b"GET /healthz?x=1 HTTP/1.0\r\n\r\n") == (
            "HTTP/1.1 503 Service Unavailable",
            "the thing is broken\n",
        )
        assert (await get(server.port, b"GET /other HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 404 Not Found"
        assert (await get(server.port, b"POST /healthz HTTP/1.1\r\n\r\n"))[0] == "HTTP/1.1 405 Method Not Allowed"
        assert await get(server.port, b"nonsense\r\n\r\n") == ("", "")  # no HTTP, no answer; the server lives on
        assert (await get(server.port, b"GET /healthz HTTP/1.1\r\n\r\n"))[0].endswith("503 Service Unavailable")
    finally:
        await server.close()


async def test_the_first_failing_check_is_the_reason_and_a_slow_one_times_out(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("shared.runtime.observability.server.CHECK_TIMEOUT_S", 0.05)
    health = Health()

    async def fine() -> str | None:
        return None

    async def hangs() -> str | None:
        await asyncio.sleep(10)
        return None

    async def broken() -> str | None:
        return "broken"

    health.add("fine", fine)
    health.add("Redis", hangs)
    health.add("broken", broken)
    assert await health.problem() == "Redis did not answer within 0.05 s"
    assert CHECK_TIMEOUT_S == 2.0


def test_reply_time_starts_at_the_messages_snowflake_or_else_at_enqueueing() -> None:
    sent_at = 1_780_000_000.25
    snowflake = str(int((sent_at - DISCORD_EPOCH_S) * 1000) << 22)
    base = {"user_id": "1", "channel_id": "2", "kind": "answer", "content": "hi"}
    assert asked_at({**base, "job_id": snowflake, "enqueued_at": sent_at + 0.01}) == pytest.approx(sent_at)  # type: ignore[typeddict-item]
    # Ids that are no message's (benchmarks, tests) fall back to when the job was queued.
    assert asked_at({**base, "job_id": "2000001", "enqueued_at": sent_at}) == sent_at  # type: ignore[typeddict-item]
    assert asked_at({**base, "job_id": "job-7", "enqueued_at": sent_at}) == sent_at  # type: ignore[typeddict-item]


def test_each_role_exports_its_own_series_with_outcomes_at_zero() -> None:
    def names(role: str) -> set[str]:
        registry = registry_for(role)  # type: ignore[arg-type]
        return {m.name for m in registry.collect() if m.name.startswith("llamabot_")}

    assert names("bot") == {
        "llamabot_messages",
        "llamabot_discord_requests",
        "llamabot_discord_budget_wait_seconds",
        "llamabot_queue_depth",
        "llamabot_workers_alive",
    }
    assert names("runner") == {
        "llamabot_jobs",
        "llamabot_generated_tokens",
        "llamabot_batch_rows",
        "llamabot_generation_seconds",
        "llamabot_queue_wait_seconds",
    }
    assert names("updater") == {
        "llamabot_reply_seconds",
        "llamabot_discord_requests",
        "llamabot_discord_budget_wait_seconds",
    }
    samples = {s.labels.get("outcome") for m in registry_for("runner").collect() for s in m.samples}
    assert {"answered", "failed", "dead_lettered", "dropped_late"} <= samples


@pytest.mark.parametrize(
    ("count", "ids", "share"),
    [("", "", 1.0), ("auto", "", 1.0), ("4", "", 1.0), ("4", "1,3", 0.5), ("2", " 1 ", 0.5)],
)
def test_shard_settings_and_the_share_of_the_budgets(count: str, ids: str, share: float) -> None:
    settings = Settings.from_env({"SHARD_COUNT": count, "SHARD_IDS": ids}, env_file=None)
    assert settings.shard_share == share
    expected = {"": None, "auto": "auto"}[count] if count in ("", "auto") else int(count)
    assert settings.shard_count == expected


@pytest.mark.parametrize(
    ("count", "ids", "error"),
    [
        ("", "0", "SHARD_IDS needs SHARD_COUNT"),
        ("auto", "0", "SHARD_IDS needs SHARD_COUNT"),
        ("2", "2", "shards run 0 to 1"),
        ("2", "0,0", "named twice"),
        ("2", "a", "shard numbers"),
        ("0", "", "SHARD_COUNT is invalid"),
    ],
)
def test_shard_settings_that_cannot_work_stop_the_bot_with_one_line(count: str, ids: str, error: str) -> None:
    with pytest.raises(SettingsError, match=error):
        Settings.from_env({"SHARD_COUNT": count, "SHARD_IDS": ids}, env_file=None)


def test_a_bot_process_holding_some_shards_takes_that_share_of_the_bots_budgets() -> None:
    whole = Outbox(Settings(), client=None)  # type: ignore[arg-type]  # only stored
    half = Outbox(Settings(shard_count=4, shard_ids=(0, 3)), client=None)  # type: ignore[arg-type]
    assert half.messages.per_s == pytest.approx(whole.messages.per_s / 2)
    assert half.reactions is not None and whole.reactions is not None
    assert half.reactions.per_s == pytest.approx(whole.reactions.per_s / 2)


def test_make_run_gives_each_process_its_own_metrics_port() -> None:
    ports = [metrics_port_of(offset, Settings(metrics_port=9100)) for offset, _ in enumerate(START_ORDER)]
    assert ports == [{"METRICS_PORT": "9100"}, {"METRICS_PORT": "9101"}, {"METRICS_PORT": "9102"}]
    assert metrics_port_of(1, Settings()) == {}  # unset: every process leaves it unset
