"""A whole deployment to break on purpose: bot, runners and updater as processes, real Redis, fake Discord.

Used by the fault-injection tests (tests/test_fault_*.py) and by `bench/chaos.py`. Everything a test needs to
judge a guarantee from the outside: replies counted per question, the queue's lists, process memory.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

from redis.asyncio import Redis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from shared.storage.keys import Keys
from tests.e2e_support import replies_to
from tests.fake_discord import FakeDiscord
from tests.fake_discord.state import Payload
from tests.redis_server import RedisServer
from tests.system import Process, System, base_env

KEYS = Keys()
BUSY_LISTS = ("query", "query:*", "response", "processing:*", "posting:*", "pending:*")
"""Lists that hold work in progress (the legacy queue, each model's queue, ...): all of them are empty (absent) once a
deployment has drained."""

_worker_numbers = itertools.count(1)
_ACCEPTED = re.compile(r"message (\d+) from user \d+: (?:queued|pending)")


def test_client(url: str) -> Redis:
    """The test's own connection, which rides out a Redis restart as the processes' do."""
    return Redis.from_url(
        url,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), retries=20),
        retry_on_error=[RedisConnectionError],
    )


MESSAGES_ROUTE = r"/channels/\d+/messages"
"""The fake Discord route the bot and updater post messages to, for fault injection."""


def message_post_statuses(fake: FakeDiscord, start: int) -> list[int]:
    """Statuses of the message POSTs the fake received since request number `start`."""
    return [status for method, path, status in fake.requests[start:] if method == "POST" and path.endswith("/messages")]


def reply_counts(fake: FakeDiscord) -> Counter[str]:
    """How many of the bot's posts reply to each message id."""
    counts: Counter[str] = Counter()
    for post in fake.posted:
        reference = post["_request"].get("message_reference") or {}
        if reference.get("message_id") is not None:
            counts[str(reference["message_id"])] += 1
    return counts


def rss_mib(process: Process) -> float:
    """Resident memory of a running process (VmRSS), in MiB."""
    for line in Path(f"/proc/{process.popen.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError(f"{process.name} has no VmRSS (exited?)")


@dataclass
class Cluster:
    """A running deployment; processes started through it get unique WORKER_IDs so tests can find their lists."""

    fake: FakeDiscord
    system: System
    redis: Redis
    server: RedisServer
    worker_ids: dict[str, str] = field(default_factory=dict)

    def start(self, module: str, **env: str) -> Process:
        """Starts a process without waiting for it; runners and updaters get a WORKER_ID recorded by name."""
        if module in ("runner", "updater") and "WORKER_ID" not in env:
            env["WORKER_ID"] = f"{module}-{next(_worker_numbers)}"
        process = self.system.start(module, **env)
        if "WORKER_ID" in env:
            self.worker_ids[process.name] = env["WORKER_ID"]
        return process

    async def start_runner(self, **env: str) -> Process:
        runner = self.start("runner", **env)
        await self.system.wait_for_log(runner, "taking jobs", timeout=120)
        return runner

    async def start_updater(self, **env: str) -> Process:
        updater = self.start("updater", **env)
        await self.system.wait_for_log(updater, "posting as", timeout=60)
        return updater

    def alive(self, module: str) -> list[Process]:
        return [p for p in self.system.processes if p.name.startswith(module) and p.alive()]

    def kill(self, process: Process) -> None:
        self.system.kill(process)

    def pause(self, process: Process) -> None:
        process.popen.send_signal(signal.SIGSTOP)

    def resume(self, process: Process) -> None:
        process.popen.send_signal(signal.SIGCONT)

    async def opt_in(self, names: Iterable[str]) -> list[Payload]:
        """New users, opted in straight in Redis (what `!optin` does), which is quicker for many users."""
        users = [self.fake.add_user(name) for name in names]
        if users:
            await self.redis.sadd(KEYS.optin, *(u["id"] for u in users))
        return users

    def accepted(self) -> set[str]:
        """Ids of the messages the bot says it queued (its log line once Redis took the job)."""
        return {m for p in self.system.processes if p.name.startswith("bot") for m in _ACCEPTED.findall(p.log())}

    async def wait_for_any_log(self, processes: list[Process], text: str, timeout: float = 30.0) -> Process:
        """The first of `processes` whose log shows `text`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for process in processes:
                if text in process.log():
                    return process
            await asyncio.sleep(0.02)
        raise AssertionError(f"no process logged {text!r} in {timeout}s")

    async def wait_for_log_of(self, process: Process, texts: list[str], timeout: float = 30.0) -> str:
        """The first of `texts` that the process's log shows."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            log = process.log()
            for text in texts:
                if text in log:
                    return text
            await asyncio.sleep(0.02)
        raise AssertionError(f"{process.name} logged none of {texts} in {timeout}s:\n{process.log()}")

    async def held_by(self, process: Process) -> list[str]:
        """Raw jobs or responses in the worker's own list (processing:{id} or posting:{id})."""
        worker_id = self.worker_ids[process.name]
        key = KEYS.processing(worker_id) if process.name.startswith("runner") else KEYS.posting(worker_id)
        return list(await self.redis.lrange(key, 0, -1))

    async def busy_keys(self) -> dict[str, int]:
        """Work-in-progress lists that are not empty, with their lengths."""
        found: dict[str, int] = {}
        for pattern in BUSY_LISTS:
            async for key in self.redis.scan_iter(KEYS.prefix + pattern):
                found[key] = await self.redis.llen(key)
        return {key: length for key, length in found.items() if length}

    async def wait_answered(self, message_ids: Iterable[str], timeout: float) -> None:
        """Returns once every message has at least one reply."""
        wanted = list(message_ids)
        deadline = time.monotonic() + timeout
        while True:
            counts = reply_counts(self.fake)
            missing = [m for m in wanted if not counts[m]]
            if not missing:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"{len(missing)} of {len(wanted)} messages unanswered after {timeout}s, e.g. {missing[:5]}; "
                    f"busy lists: {await self.busy_keys()}\n{self.system.logs()[-6000:]}"
                )
            await asyncio.sleep(0.05)

    async def wait_drained(self, timeout: float) -> None:
        """Returns once no job or response waits or is held anywhere."""
        deadline = time.monotonic() + timeout
        while busy := await self.busy_keys():
            if time.monotonic() > deadline:
                raise AssertionError(f"still busy after {timeout}s: {busy}\n{self.system.logs()[-6000:]}")
            await asyncio.sleep(0.05)

    def assert_each_answered_once(self, message_ids: Iterable[str]) -> None:
        counts = reply_counts(self.fake)
        wrong = {m: counts[m] for m in message_ids if counts[m] != 1}
        assert not wrong, f"replies per message (want exactly 1): {wrong}; " + "; ".join(
            f"{m}: {[p['content'][:40] for p in replies_to(self.fake, m)]}" for m in list(wrong)[:5]
        )

    def check_logs(self) -> None:
        logs = self.system.logs()
        assert "Traceback" not in logs, logs
        assert self.fake.token not in logs


@asynccontextmanager
async def running_cluster(
    server: RedisServer,
    log_dir: Path,
    *,
    model: str = "echo",
    runners: int = 1,
    updaters: int = 1,
    redis_late: bool = False,
    fake: FakeDiscord | None = None,
    bots: Sequence[Mapping[str, str]] = ({},),
    identifications: int = 1,
    **env: str,
) -> AsyncIterator[Cluster]:
    """Fake Discord (`fake`, with its guilds added, if given), one bot per entry of `bots` (each with its own extra
    environment), `runners` runners and `updaters` updaters against `server`, each ready to work once the fake
    answered `identifications` IDENTIFYs (one per gateway shard).

    With `redis_late` the server is not running yet: the processes start first, each must log that it waits
    for Redis, and then the server is started. Otherwise the server's data is flushed first. On exit every
    process still running gets SIGTERM and must exit 0, and no log may hold a traceback.
    """
    redis = test_client(server.url)
    if not redis_late:
        await redis.flushall()
    fake = fake or FakeDiscord()
    await fake.start()
    environment = {
        **base_env(
            redis_url=server.url, api_base=fake.api_base, gateway_url=fake.gateway_url, token=fake.token, model=model
        ),
        "HEARTBEAT_TTL_S": "1",
        **env,
    }
    cluster = Cluster(fake, System(environment, log_dir), redis, server)
    codes: dict[str, int | None] = {}
    try:
        for extra in bots:
            cluster.start("bot", **extra)
        starting = [cluster.start("runner") for _ in range(runners)]
        starting += [cluster.start("updater") for _ in range(updaters)]
        if redis_late:
            for process in cluster.system.processes:
                await cluster.system.wait_for_log(process, f"waiting for Redis at {server.url}", timeout=120)
            server.start()
        await fake.wait_identified(timeout=60, count=identifications)
        for process in starting:
            await cluster.system.wait_for_log(
                process, "taking jobs" if process.name.startswith("runner") else "posting as", timeout=120
            )
        yield cluster
    finally:
        for process in cluster.system.processes:
            if process.alive():
                os.kill(process.popen.pid, signal.SIGCONT)  # a paused process cannot act on SIGTERM
        codes = await asyncio.to_thread(cluster.system.stop_all)  # the fake keeps answering meanwhile
        await fake.stop()
        await redis.aclose()
    assert all(code == 0 for code in codes.values()), f"exit codes {codes}\n{cluster.system.logs()}"
    cluster.check_logs()
