"""`python bench/streaming.py [--compare-off]`: what streaming answers look like to 16 users asking at once.

The built-in model, MAX_NEW_TOKENS=128, the real bot, runner and updater against the fake Discord: 16 users, each
asking one of the questions in bench/questions.json at the same moment, spread over CHANNELS channels (Discord lets
a bot send 5 messages per 5 s into one channel, edits included: with 16 answers in one channel, most partial
updates must give way, by design). For each user: the time
from their message to the first visible text (the reply created at the fake) and to the final text (the edit
that removed the streaming marker, or the whole answer's post); the edits per answer; and the busiest second's
requests to Discord from all processes together. `--compare-off` runs the same with STREAM_INTERVAL_S=0 in the
same sitting, for the final-answer time without streaming. The last line is the summary.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.pipeline import peak_per_second  # noqa: E402
from bench.throughput import DEFAULT_CACHE_DIR, QUESTIONS  # noqa: E402
from tests.fault_support import Cluster, running_cluster  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from updater.rendering import STREAMING_MARKER  # noqa: E402

USERS = 16
NEW_TOKENS = 128
CHANNELS = 8


@dataclass(frozen=True)
class Run:
    first_text_s: list[float]
    final_s: list[float]
    edits_per_answer: float
    busiest_second: int


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


async def ask_all(cluster: Cluster, channels: list[str]) -> Run:
    fake = cluster.fake
    users = await cluster.opt_in(f"user{i}" for i in range(USERS))
    first_request = len(fake.requests)
    sent = {}
    for index, user in enumerate(users):
        sent_at = time.monotonic()
        channel = channels[index % len(channels)]
        message = await fake.send_message(user, f"Hey Llama, {QUESTIONS[index % len(QUESTIONS)]}", channel_id=channel)
        sent[message["id"]] = sent_at
    replies: dict[str, list[dict[str, object]]] = {}
    deadline = time.monotonic() + 300
    while True:
        replies = {q: [p for p in fake.posted if _replies_to(p, q)] for q in sent}
        shown = [fake.message(str(p["id"]))["content"] for parts in replies.values() for p in parts]
        if all(replies.values()) and not any(str(text).endswith(STREAMING_MARKER) for text in shown):
            break
        if time.monotonic() > deadline:
            waiting = [q for q, parts in replies.items() if not parts]
            raise RuntimeError(f"not every answer was final after 300 s: {len(waiting)} without a reply, {shown}")
        await asyncio.sleep(0.05)
    await cluster.wait_drained(timeout=30)
    first_text, final, edits = [], [], 0
    for question, parts in replies.items():
        ids = {str(p["id"]) for p in parts}
        created = [float(p["_received_at"]) for p in parts]  # type: ignore[arg-type]
        edited = [float(e["_received_at"]) for e in fake.edits if str(e["message_id"]) in ids]
        edits += len(edited)
        first_text.append(min(created) - sent[question])
        final.append(max(created + edited) - sent[question])
    busiest = peak_per_second(fake.request_times[first_request:])
    return Run(first_text, final, edits / len(replies), busiest)


def _replies_to(post: dict[str, object], question: str) -> bool:
    reference = post["_request"].get("message_reference") or {}  # type: ignore[attr-defined]
    return str(reference.get("message_id")) == question


async def measure(server: RedisServer, work_dir: Path, interval: str, model: str) -> Run:
    env = {
        "MODEL_CACHE_DIR": DEFAULT_CACHE_DIR,
        "MAX_NEW_TOKENS": str(NEW_TOKENS),
        "STREAM_INTERVAL_S": interval,
        "BATCH_SIZE": str(USERS),
        "OMP_NUM_THREADS": "2",
        "HEARTBEAT_TTL_S": "15",
        "RATE_LIMIT_PER_MINUTE": "100",
    }
    log_dir = work_dir / f"stream-{interval}"
    log_dir.mkdir()
    async with running_cluster(server, log_dir, model=model, **env) as cluster:
        channels = [cluster.fake.channel_id] + [cluster.fake.add_text_channel(f"talk{i}") for i in range(1, CHANNELS)]
        return await ask_all(cluster, channels)


def report(name: str, run: Run) -> None:
    print(
        f"{name:<14} first text p50 {statistics.median(run.first_text_s):5.2f} s  p95 "
        f"{percentile(run.first_text_s, 0.95):5.2f} s   final p50 {statistics.median(run.final_s):5.2f} s  p95 "
        f"{percentile(run.final_s, 0.95):5.2f} s   edits/answer {run.edits_per_answer:4.1f}   busiest second "
        f"{run.busiest_second} requests"
    )


async def main(compare_off: bool, interval: str, model: str) -> None:
    with tempfile.TemporaryDirectory(prefix="streaming-") as work:
        work_dir = Path(work)
        (work_dir / "redis").mkdir()
        server = RedisServer(work_dir / "redis")
        server.start()
        try:
            print(
                f"{USERS} users at once in {CHANNELS} channels, built-in model, MAX_NEW_TOKENS={NEW_TOKENS}, "
                f"STREAM_INTERVAL_S={interval}"
            )
            on = await measure(server, work_dir, interval, model)
            report("streaming", on)
            summary = {
                "users": USERS,
                "first_text_p50_s": f"{statistics.median(on.first_text_s):.2f}",
                "first_text_p95_s": f"{percentile(on.first_text_s, 0.95):.2f}",
                "final_p50_s": f"{statistics.median(on.final_s):.2f}",
                "edits_per_answer": f"{on.edits_per_answer:.1f}",
                "busiest_second_requests": on.busiest_second,
            }
            if compare_off:
                off = await measure(server, work_dir, "0", model)
                report("streaming off", off)
                summary["final_p50_s_off"] = f"{statistics.median(off.final_s):.2f}"
                ratio = statistics.median(on.final_s) / statistics.median(off.final_s)
                summary["final_over_off"] = f"{ratio:.2f}"
            print(" ".join(f"{key}={value}" for key, value in summary.items()))
        finally:
            server.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--compare-off", action="store_true", help="also run with STREAM_INTERVAL_S=0")
    parser.add_argument("--interval", default="1.0", help="STREAM_INTERVAL_S (default 1.0, the setting's)")
    parser.add_argument("--model", default="builtin", help="MODEL (e.g. echo:10 to check the pipeline alone)")
    args = parser.parse_args()
    asyncio.run(main(args.compare_off, args.interval, args.model))
