"""Every Prometheus series the processes export, named once here (dashboards and alerts depend on these names).

The metrics belong to no registry until a process registers those of its role (`registry_for`), so a bot does not
export empty runner series. No label ever carries a user, channel or guild id: only outcomes, models, queue names,
roles, process kinds and HTTP statuses, each a small fixed set.
"""

from __future__ import annotations

from typing import Literal

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.metrics import MetricWrapperBase
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

Role = Literal["bot", "runner", "updater"]

MESSAGE_OUTCOMES = ("queued", "pending", "rate_limited", "full", "lane_full", "busy", "not_opted_in", "duplicate")
"""What became of a message addressed to the bot (chatter not addressed to it is not counted)."""
JOB_OUTCOMES = ("answered", "failed", "dead_lettered", "dropped_late")
"""How a runner's job ended: answered; failed (to be retried); dead-lettered; its answer dropped because the job had
been taken back from this runner (a stall longer than the heartbeat TTL)."""

_SHORT_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_LONG_S = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)

MESSAGES = Counter(
    "llamabot_messages", "Messages addressed to the bot, by what became of them.", ["outcome"], registry=None
)
JOBS = Counter("llamabot_jobs", "Jobs a runner finished, by how they ended.", ["outcome"], registry=None)
GENERATED_TOKENS = Counter("llamabot_generated_tokens", "Tokens generated for answered jobs.", ["model"], registry=None)
BATCH_ROWS = Gauge("llamabot_batch_rows", "Jobs a runner is generating now.", ["model"], registry=None)
GENERATION_SECONDS = Histogram(
    "llamabot_generation_seconds",
    "Time from handing a job to the engine to its result, per job.",
    ["model"],
    buckets=_LONG_S,
    registry=None,
)
QUEUE_WAIT_SECONDS = Histogram(
    "llamabot_queue_wait_seconds",
    "Time from a job's enqueueing (waiting behind its lane included) to a runner claiming it.",
    buckets=_LONG_S,
    registry=None,
)
REPLY_SECONDS = Histogram(
    "llamabot_reply_seconds",
    "Time from the user's message (its snowflake's time) to the final text of its answer on Discord.",
    buckets=_LONG_S,
    registry=None,
)
DISCORD_REQUESTS = Counter(
    "llamabot_discord_requests",
    "HTTP requests to Discord's REST API, by process and status ('error' when no answer came).",
    ["process", "status"],
    registry=None,
)
DISCORD_BUDGET_WAIT_SECONDS = Histogram(
    "llamabot_discord_budget_wait_seconds",
    "Time a request that may not be skipped waited for the process's share of Discord's request budget.",
    buckets=_SHORT_S,
    registry=None,
)
QUEUE_DEPTH = Gauge(
    "llamabot_queue_depth",
    "Entries in each Redis list: query:<model> (waiting for a runner), processing, response, dead.",
    ["queue"],
    registry=None,
)
WORKERS_ALIVE = Gauge("llamabot_workers_alive", "Workers with a live heartbeat, by role.", ["role"], registry=None)

_DISCORD = (DISCORD_REQUESTS, DISCORD_BUDGET_WAIT_SECONDS)
_BY_ROLE: dict[Role, tuple[MetricWrapperBase, ...]] = {
    "bot": (MESSAGES, *_DISCORD, QUEUE_DEPTH, WORKERS_ALIVE),
    "runner": (JOBS, GENERATED_TOKENS, BATCH_ROWS, GENERATION_SECONDS, QUEUE_WAIT_SECONDS),
    "updater": (REPLY_SECONDS, *_DISCORD),
}


def registry_for(role: Role) -> CollectorRegistry:
    """A registry with the series `role` exports (outcomes at 0 before the first one) and the process's own
    CPU, memory and garbage-collector figures."""
    disable_created_metrics()  # type: ignore[no-untyped-call]  # the *_created series double what a scrape carries and no dashboard reads them
    registry = CollectorRegistry(auto_describe=True)
    for metric in _BY_ROLE[role]:
        registry.register(metric)
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        collector(registry=registry)
    outcomes = {"bot": (MESSAGES, MESSAGE_OUTCOMES), "runner": (JOBS, JOB_OUTCOMES)}.get(role)
    if outcomes is not None:
        for outcome in outcomes[1]:
            outcomes[0].labels(outcome)
    return registry
