"""`python bench/pipeline.py`: what the queue itself costs, with an engine that answers instantly (MODEL=echo).

Three measurements, each against a real redis-server and real `python -m bot|runner|updater` processes:
1. latency: bot -> Redis -> runner -> updater -> fake Discord, from the fake dispatching a user's message to
   it receiving the reply, over 1,000 messages from 100 users, paced below Discord's global rate limit;
2. capacity: jobs/s from enqueue to completion with no Discord at all;
3. scaling: throughput with 1, 2 and 4 runners whose engine takes a fixed time per batch (a stand-in GPU).
The last line is the summary: `overhead_p50_ms=… overhead_p99_ms=… jobs_per_s=… scaling_4_runners=… metrics=off`.

`--metrics`: every process serves /metrics and /healthz (METRICS_PORT), and each is scraped once a second (both
routes; Prometheus's default is every 15 s): what observability costs the pipeline.

`--persona`: the latency run's server has a persona (both placeholders), an allow-list holding its channel and a role
list holding a role every user has, so every job carries a persona and every message is checked against both lists
(what those cost the pipeline). The latency run also reports the Redis commands it took per message (all processes,
from the server's own count): the same with and without --persona, since the lists are read with the model choice.
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import contextlib
import os
import signal
import statistics
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from redis.asyncio import Redis  # noqa: E402

from shared.config.settings import Settings  # noqa: E402
from shared.queues.job_queue import JobQueue  # noqa: E402
from shared.queues.jobs import new_job  # noqa: E402
from shared.queues.schemas import Job, encode  # noqa: E402
from shared.storage.keys import Keys  # noqa: E402
from shared.stores.channel_access import ChannelAccess  # noqa: E402
from shared.stores.personas import Personas  # noqa: E402
from shared.stores.role_access import RoleAccess  # noqa: E402
from tests.fake_discord import FakeDiscord  # noqa: E402
from tests.redis_server import RedisServer, free_port  # noqa: E402
from tests.system import Process, System, base_env  # noqa: E402

DEFAULTS = Settings()
"""What a deployment that sets nothing gets: the budgets this benchmark runs under and reports."""
USERS = 100
MESSAGES = 1000
MESSAGES_PER_S = 20.0
"""Offered load of the latency run. Each message costs one reply (updater) and one reaction (bot) while the
bot's reaction budget lasts: 20 replies/s plus at most REACTIONS_PER_S reactions, under Discord's 50/s, so
no request ever waits for the rate limit and the figures are the pipeline's own cost."""
BURST_RESPONSES = 200
"""Answers pushed at once to show the updater keeps to its request rate whatever the backlog."""
CAPACITY_JOBS = 6000
CAPACITY_RUNNERS = 1
CAPACITY_BATCH = 32
ENQUEUE_CONCURRENCY = 64
SCALING_DELAY_S = 0.2
SCALING_BATCH = 16
SCALING_ROUNDS = 12
"""Full batches each runner gets in a scaling run, so start-up and tail effects stay small."""
DISCORD_GLOBAL_LIMIT_PER_S = 50
KEYS = Keys()
SCRAPE_INTERVAL_S = 1.0
"""How often --metrics scrapes each process's /metrics and /healthz."""
WITH_PERSONA = "--persona" in sys.argv[1:]
"""--persona (also declared to argparse below, for --help); read here so the latency run needs no parameter."""
BENCH_PERSONA = "You are Captain Byte, the helpful pirate of {server}. Today is {date}. Answer concisely."
ECHO_MODEL_NAME = "echo"
"""The name the echo runners serve under (MODEL=echo, no MODEL_NAME): the queue the jobs are routed to."""


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def peak_per_second(times: Iterable[float]) -> int:
    """Most events in any one-second sliding window."""
    ordered = sorted(times)
    return max((bisect.bisect_right(ordered, t + 1.0) - i for i, t in enumerate(ordered)), default=0)


def bench_job(user_id: str, index: int) -> Job:
    job_id, content = str(1_200_000_000_000_000_000 + index), f"Hey llama, question {index}"
    return new_job(job_id, user_id, "900", content, guild_id="800", model=ECHO_MODEL_NAME)


class Bench:
    def __init__(self, server: RedisServer, work_dir: Path, *, metrics: bool = False) -> None:
        self.server = server
        self.work_dir = work_dir
        self.metrics = metrics
        self.ports: list[int] = []
        """METRICS_PORT of each process started with --metrics, scraped while it runs."""
        self.scrapes = 0
        self.redis = Redis.from_url(server.url, decode_responses=True, max_connections=ENQUEUE_CONCURRENCY + 8)
        self.systems: list[System] = []

    def system(self, name: str, fake: FakeDiscord | None = None, **env: str) -> System:
        log_dir = self.work_dir / name
        log_dir.mkdir()
        api, gateway, token = (fake.api_base, fake.gateway_url, fake.token) if fake else ("", "", "unused")
        environment = base_env(redis_url=self.server.url, api_base=api, gateway_url=gateway, token=token, model="echo")
        environment.update(HEARTBEAT_TTL_S=str(DEFAULTS.heartbeat_ttl_s), RATE_LIMIT_PER_MINUTE="10000", **env)
        system = System(environment, log_dir)
        self.systems.append(system)
        return system

    def start(self, system: System, module: str) -> Process:
        """Starts a process, serving /metrics and /healthz on a port of its own with --metrics."""
        if not self.metrics:
            return system.start(module)
        port = free_port()
        self.ports.append(port)
        return system.start(module, METRICS_PORT=str(port))

    async def scrape_forever(self) -> None:
        """Scrapes every process's /metrics and /healthz each SCRAPE_INTERVAL_S, as a (busy) Prometheus would."""

        def get(port: int, path: str) -> None:
            with contextlib.suppress(OSError), urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                r.read()

        while True:
            for port in list(self.ports):
                for path in ("/metrics", "/healthz"):
                    await asyncio.to_thread(get, port, path)
                    self.scrapes += 1
            await asyncio.sleep(SCRAPE_INTERVAL_S)

    def stop_all(self) -> None:
        for system in self.systems:
            system.stop_all(timeout=15)
        self.systems.clear()
        self.ports.clear()

    async def wait_responses(self, count: int, timeout_s: float) -> float:
        """Polls until the response list holds `count` answers; returns when that was first seen."""
        deadline = time.monotonic() + timeout_s
        while await self.redis.llen(KEYS.response) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {await self.redis.llen(KEYS.response)} of {count} answers in {timeout_s}s")
            await asyncio.sleep(0.002)
        return time.monotonic()

    async def enqueue_all(self, jobs: list[Job]) -> None:
        queue = JobQueue(self.redis, KEYS, Settings(rate_limit_per_minute=10_000))
        users = sorted({job["user_id"] for job in jobs})
        await self.redis.sadd(KEYS.optin, *users)
        pending = iter(jobs)

        async def enqueuer() -> None:
            for job in pending:
                result = await queue.enqueue(job)
                if result.status not in ("queued", "pending"):
                    raise RuntimeError(f"enqueue refused: {result.status}")

        await asyncio.gather(*(enqueuer() for _ in range(ENQUEUE_CONCURRENCY)))

    async def runners(self, name: str, count: int, **env: str) -> System:
        system = self.system(name, **env)
        started = [self.start(system, "runner") for _ in range(count)]
        for process in started:
            await system.wait_for_log(process, "taking jobs", timeout=60)
        return system

    async def latency(self) -> dict[str, float]:
        """Messages through the whole deployment; latency from dispatch to the reply reaching the fake."""
        await self.redis.flushall()
        fake = FakeDiscord()
        role = fake.add_role("bench") if WITH_PERSONA else None
        await fake.start()
        try:
            system = self.system("latency", fake, BATCH_SIZE=str(CAPACITY_BATCH))
            runner, updater = self.start(system, "runner"), self.start(system, "updater")
            self.start(system, "bot")
            await fake.wait_identified(timeout=60)
            await system.wait_for_log(runner, "taking jobs", timeout=60)
            await system.wait_for_log(updater, "posting as", timeout=60)
            if WITH_PERSONA:
                await Personas(self.redis, KEYS).set(fake.guild_id, None, BENCH_PERSONA)
                await ChannelAccess(self.redis, KEYS, allow_dms=True).allow(fake.guild_id, fake.channel_id)
            users = [fake.add_user(f"user{i}") for i in range(USERS)]
            if role is not None:
                await RoleAccess(self.redis, KEYS).allow(fake.guild_id, role)
                for user in users:
                    fake.give_role(user, role)
            await paced(USERS, MESSAGES_PER_S, lambda i: fake.send_message(users[i], "!optin"))
            await fake.wait_for_posts(USERS, timeout=60)
            sent_at: dict[str, float] = {}
            started_at = time.monotonic()
            commands_before = await self.commands_processed()

            async def send(i: int) -> None:
                message = await fake.send_message(users[i % USERS], f"Hey llama, tell me about number {i}")
                # Timed from here: the MESSAGE_CREATE frame is on the bot's socket, as when Discord delivers it.
                sent_at[message["id"]] = time.monotonic()

            await paced(MESSAGES, MESSAGES_PER_S, send)
            posts = await fake.wait_for_posts(USERS + MESSAGES, timeout=120)
            commands = await self.commands_processed() - commands_before
            window = [t for t in fake._journal.request_times if t >= started_at]
            latencies = [
                (post["_received_at"] - sent_at[ref]) * 1000
                for post in posts
                if (ref := str((post["_request"].get("message_reference") or {}).get("message_id"))) in sent_at
            ]
            burst = await self.burst(fake, users)
        finally:
            self.stop_all()
            await fake.stop()
        return {
            "answered": len(latencies),
            "p50": statistics.median(latencies),
            "p99": percentile(latencies, 0.99),
            "max": max(latencies),
            "reactions": sum(1 for r in fake.reactions if r[1] in sent_at),
            "peak_rps": peak_per_second(window),
            "commands_per_message": commands / MESSAGES,
            **burst,
        }

    async def commands_processed(self) -> int:
        """Commands the Redis server has processed so far (its INFO count; script-internal calls are not in it)."""
        return int((await self.redis.info("stats"))["total_commands_processed"])

    async def burst(self, fake: FakeDiscord, users: list[dict[str, object]]) -> dict[str, float]:
        """Pushes many answers at once; the updater must drain them without passing its request rate."""
        before = len(fake.posted)
        started_at = time.monotonic()
        responses = [
            encode(
                {
                    "job_id": str(2_000_000 + i),
                    "user_id": str(users[i % USERS]["id"]),
                    "channel_id": fake.channel_id,
                    "kind": "answer",
                    "content": f"burst {i}",
                    "enqueued_at": time.time(),
                    "completed_at": time.time(),
                }
            )
            for i in range(BURST_RESPONSES)
        ]
        await self.redis.lpush(KEYS.response, *responses)
        await fake.wait_for_posts(before + BURST_RESPONSES, timeout=120)
        window = [t for t in fake._journal.request_times if t >= started_at]
        return {"burst_s": time.monotonic() - started_at, "burst_peak_rps": peak_per_second(window)}

    async def capacity(self) -> float:
        """Jobs/s from the first enqueue to the last completion, runners only (no bot, no updater, no Discord)."""
        await self.redis.flushall()
        await self.runners("capacity", CAPACITY_RUNNERS, BATCH_SIZE=str(CAPACITY_BATCH))
        jobs = [bench_job(f"u{i}", i) for i in range(CAPACITY_JOBS)]
        started = time.monotonic()
        await self.enqueue_all(jobs)
        done = await self.wait_responses(CAPACITY_JOBS, timeout_s=120)
        self.stop_all()
        return CAPACITY_JOBS / (done - started)

    async def throughput(self, runner_count: int) -> float:
        """Jobs/s of `runner_count` runners whose engine takes SCALING_DELAY_S per batch."""
        await self.redis.flushall()
        env = {"MODEL": f"echo:{SCALING_DELAY_S}", "BATCH_SIZE": str(SCALING_BATCH)}
        await self.runners(f"scaling{runner_count}", runner_count, **env)
        total = runner_count * SCALING_BATCH * SCALING_ROUNDS
        jobs = [bench_job(f"s{i}", i) for i in range(total)]
        started = time.monotonic()
        await self.enqueue_all(jobs)
        done = await self.wait_responses(total, timeout_s=120)
        self.stop_all()
        return total / (done - started)


async def paced(count: int, per_s: float, action: Callable[[int], Awaitable[None]]) -> None:
    """Calls action(0..count-1) at a steady rate, catching up after a late tick rather than drifting."""
    start = time.monotonic()
    for i in range(count):
        delay = start + i / per_s - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        await action(i)


def report(latency: dict[str, float], capacity: float, throughputs: dict[int, float], bench: Bench) -> None:
    scaling = throughputs[4] / (4 * throughputs[1])
    ideal = SCALING_BATCH / SCALING_DELAY_S
    offered_per_s = MESSAGES_PER_S + min(MESSAGES_PER_S, DEFAULTS.reactions_per_s)
    rows = [
        ("setup", f"{os.cpu_count()} CPUs; redis-server with AOF fsync every second; every process at LOG_LEVEL=INFO"),
        (
            "metrics",
            f"on: every process serves /metrics and /healthz, scraped every {SCRAPE_INTERVAL_S:g} s "
            f"({bench.scrapes} requests)"
            if bench.metrics
            else "off (METRICS_PORT unset)",
        ),
        ("latency run", f"{MESSAGES} messages from {USERS} users at {MESSAGES_PER_S:g}/s; bot + runner + updater"),
        (
            "  persona",
            "server persona, allow-list and role list set (--persona)" if WITH_PERSONA else "none (SYSTEM_PROMPT)",
        ),
        (
            "  pacing",
            f"1 reply (updater) + 1 reaction (bot, <= {DEFAULTS.reactions_per_s:g}/s) per message: "
            f"<= {offered_per_s:g} requests/s vs Discord's {DISCORD_GLOBAL_LIMIT_PER_S}/s",
        ),
        ("  timed", "from the fake writing MESSAGE_CREATE to the bot's socket to it receiving the reply POST"),
        ("  answered", f"{latency['answered']:.0f} / {MESSAGES} (reactions sent: {latency['reactions']:.0f})"),
        ("  overhead p50", f"{latency['p50']:.2f} ms   (target <= 5)"),
        ("  overhead p99", f"{latency['p99']:.2f} ms   (target <= 25; max {latency['max']:.1f} ms)"),
        ("  redis commands", f"{latency['commands_per_message']:.1f} per message (all processes)"),
        ("  peak requests", f"{latency['peak_rps']:.0f} in any 1 s window (limit {DISCORD_GLOBAL_LIMIT_PER_S})"),
        (
            "burst",
            f"{BURST_RESPONSES} answers at once: posted in {latency['burst_s']:.1f} s, peak "
            f"{latency['burst_peak_rps']:.0f} requests in any 1 s window (updater budget "
            f"{DEFAULTS.discord_requests_per_s:g}/s)",
        ),
        (
            "capacity",
            f"{capacity:.0f} jobs/s  ({CAPACITY_JOBS} jobs, {CAPACITY_RUNNERS} runner(s), "
            f"batch {CAPACITY_BATCH}, enqueue -> completion; target >= 2000)",
        ),
    ]
    rows += [
        (f"scaling x{n}", f"{thr:.1f} jobs/s  (ideal {n * ideal:.0f}: batch {SCALING_BATCH} / {SCALING_DELAY_S:g} s)")
        for n, thr in throughputs.items()
    ]
    rows.append(("scaling", f"{scaling:.3f}  (4-runner throughput / (4 x 1-runner); target >= 0.9)"))
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print(
        f"overhead_p50_ms={latency['p50']:.2f} overhead_p99_ms={latency['p99']:.2f} "
        f"jobs_per_s={capacity:.0f} scaling_4_runners={scaling:.3f} metrics={'on' if bench.metrics else 'off'}"
    )


async def main(metrics: bool) -> None:
    # SIGTERM cleans up like Ctrl-C does: the finally blocks below stop every process and Redis.
    main_task = asyncio.current_task()
    assert main_task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, main_task.cancel)
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        server = RedisServer(Path(tmp))
        server.start()
        bench = Bench(server, Path(tmp), metrics=metrics)
        scraping = asyncio.create_task(bench.scrape_forever()) if metrics else None
        try:
            # AOF with fsync once a second, Redis's recommended setting (tests fsync every write instead).
            await bench.redis.config_set("appendfsync", "everysec")
            latency = await bench.latency()
            capacity = await bench.capacity()
            throughputs = {n: await bench.throughput(n) for n in (1, 2, 4)}
        except Exception:
            for system in bench.systems:
                print(system.logs()[-4000:], file=sys.stderr)
            raise
        finally:
            if scraping is not None:
                scraping.cancel()
                await asyncio.gather(scraping, return_exceptions=True)
            bench.stop_all()
            await bench.redis.aclose()
            server.stop()
    report(latency, capacity, throughputs, bench)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--metrics", action="store_true", help="every process serves /metrics, scraped every second")
    parser.add_argument("--persona", action="store_true", help="a server persona and allow-list in force (read below)")
    try:
        asyncio.run(main(parser.parse_args().metrics))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted; processes and Redis stopped", file=sys.stderr)
        sys.exit(130)
