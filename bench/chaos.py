"""`python bench/chaos.py --trials 20`: kill workers at random moments and count lost and duplicated answers.

One deployment for all trials: redis-server, the fake Discord, the bot, two runners with a tiny random Llama
(built by tests.tiny_model) and an updater, as real processes. Each trial sends a burst of questions from new
users, SIGKILLs a random runner at a random moment (and sometimes the updater too), restarts what it killed,
waits until every question is answered and every list is empty, and counts
- lost: questions with no reply when the trial ends,
- duplicated: questions with more than one reply (a message still on Discord that replies to it),
- wrong: answers whose final text on Discord is not the answer the runner completed (stored in the history).
Answers stream (STREAM_INTERVAL_S=--stream-interval, 0.05 s by default, so that kills land mid-stream).
The last line is the summary: `trials=… jobs=… lost=… duplicated=… wrong=…`; the exit status is 1 if any was
lost, duplicated or wrong.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.e2e_support import history_key  # noqa: E402
from tests.fault_support import KEYS, Cluster, running_cluster  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402

RUNNERS = 2
TRIAL_TIMEOUT_S = 10.0
"""Longest a trial may take, from its first message to every list drained."""
KILL_WINDOW_S = 1.0
"""The kill lands at a uniformly random moment this long after the burst starts (it takes about as long)."""
UPDATER_KILL_WINDOW_S = 1.5
"""How long an updater kill may wait for the updater to be holding a response."""
WORKER_ENV = {"MAX_NEW_TOKENS": "48", "HEARTBEAT_TTL_S": "1", "MAX_ATTEMPTS": "5"}
"""48 new tokens take the tiny model about 0.2 s, so a kill usually finds a runner mid-generation."""


def reply_counts(cluster: Cluster) -> Counter[str]:
    """How many messages still on Discord reply to each question (a part deleted as extra is not a reply)."""
    fake = cluster.fake
    deleted = {message_id for _, message_id in fake.deleted}
    counts: Counter[str] = Counter()
    for post in fake.posted:
        reference = post["_request"].get("message_reference") or {}
        if reference.get("message_id") is not None and post["id"] not in deleted:
            counts[str(reference["message_id"])] += 1
    return counts


async def wrong_answers(cluster: Cluster, questions: dict[str, tuple[str, str]]) -> int:
    """Questions whose reply on Discord shows something else than the answer the runner completed."""
    fake = cluster.fake
    completed: dict[tuple[str, str], str] = {}
    for user_id in {user for user, _ in questions.values()}:
        turns = json.loads(await cluster.redis.get(history_key(user_id, fake.channel_id)) or "[]")
        completed.update(
            ((user_id, asked["content"]), answer["content"])
            for asked, answer in zip(turns[::2], turns[1::2], strict=False)
        )
    deleted = {message_id for _, message_id in fake.deleted}
    wrong = 0
    for message_id, (user_id, text) in questions.items():
        shown = [
            fake.message(post["id"])["content"]
            for post in fake.posted
            if post["id"] not in deleted
            and str((post["_request"].get("message_reference") or {}).get("message_id")) == message_id
        ]
        if "\n".join(shown) != completed.get((user_id, text)):
            wrong += 1
    return wrong


@dataclass
class TrialResult:
    sent: list[str]
    """The questions' message ids."""
    lost: int
    duplicated: int
    wrong: int
    seconds: float
    questions: dict[str, tuple[str, str]]
    """Message id -> (user id, question), to check every final text once all trials are over."""


async def streaming(cluster: Cluster) -> bool:
    """Whether some job's partial text or posting lock is still in Redis (its final text is not shown yet)."""
    return any([key async for key in cluster.redis.scan_iter(KEYS.posting_lock("*"))])


async def wait_runners_ready(cluster: Cluster, timeout: float) -> None:
    """Until RUNNERS runners are taking jobs (a restarted one loads the model for a few seconds)."""
    deadline = time.monotonic() + timeout
    while len([r for r in cluster.alive("runner") if "taking jobs" in r.log()]) < RUNNERS:
        if time.monotonic() > deadline:
            raise RuntimeError(f"fewer than {RUNNERS} runners ready after {timeout}s:\n{cluster.system.logs()[-4000:]}")
        await asyncio.sleep(0.05)


async def trial(cluster: Cluster, number: int, rng: random.Random, args: argparse.Namespace) -> TrialResult:
    waited = time.monotonic()
    await wait_runners_ready(cluster, timeout=60)
    waited = time.monotonic() - waited
    users = await cluster.opt_in(f"trial{number}-user{i}" for i in range(args.users))
    started = time.monotonic()
    sent: list[str] = []
    questions: dict[str, tuple[str, str]] = {}
    for n in range(args.messages_per_user):
        for user in users:
            text = f"question {n} of trial {number}"
            message_id = (await cluster.fake.send_message(user, f"Hey Llama, {text}"))["id"]
            sent.append(message_id)
            questions[message_id] = (user["id"], text)

    await asyncio.sleep(rng.uniform(0, KILL_WINDOW_S))
    victim = rng.choice(cluster.alive("runner"))
    cluster.kill(victim)
    held = len(await cluster.held_by(victim))
    killed = [f"{victim.name} holding {held}"]
    cluster.start("runner", **WORKER_ENV)
    if rng.random() < args.updater_kill_chance:
        [updater] = cluster.alive("updater")
        # An updater holds a response only while it posts; the kill waits (a little) for such a moment.
        until = time.monotonic() + rng.uniform(0, UPDATER_KILL_WINDOW_S)
        while time.monotonic() < until:
            if await cluster.held_by(updater):
                break
            await asyncio.sleep(0.002)
        cluster.kill(updater)
        killed.append(f"{updater.name} holding {len(await cluster.held_by(updater))}")
        cluster.start("updater", **WORKER_ENV)

    deadline = started + TRIAL_TIMEOUT_S
    while time.monotonic() < deadline:
        counts = reply_counts(cluster)
        if all(counts[m] for m in sent) and not await cluster.busy_keys() and not await streaming(cluster):
            break
        await asyncio.sleep(0.05)
    seconds = time.monotonic() - started
    counts = reply_counts(cluster)
    result = TrialResult(
        sent=sent,
        lost=sum(1 for m in sent if counts[m] == 0),
        duplicated=sum(1 for m in sent if counts[m] > 1),
        wrong=await wrong_answers(cluster, questions),
        seconds=seconds,
        questions=questions,
    )
    print(
        f"trial {number + 1}: jobs={len(sent)} killed={', '.join(killed)} drained_in={seconds:.1f}s "
        f"(waited {waited:.1f}s for the restarted runner first) "
        f"lost={result.lost} duplicated={result.duplicated} wrong={result.wrong}",
        flush=True,
    )
    return result


async def run(args: argparse.Namespace) -> int:
    rng = random.Random(args.seed)
    print(f"seed={args.seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="chaos-") as work:
        work_dir = Path(work)
        model = build_tiny_model(work_dir / "model")
        (work_dir / "redis").mkdir()
        server = RedisServer(work_dir / "redis")
        server.start()
        results: list[TrialResult] = []
        counts: Counter[str] = Counter()
        edits = wrong = 0
        clean_exit = True
        try:
            env = {**WORKER_ENV, "STREAM_INTERVAL_S": str(args.stream_interval)}
            async with running_cluster(server, work_dir, model=str(model), runners=RUNNERS, **env) as cluster:
                for number in range(args.trials):
                    results.append(await trial(cluster, number, rng, args))
                # A reply after its trial's deadline is late, not lost; a late duplicate still counts.
                await asyncio.sleep(1.0)
                counts = reply_counts(cluster)
                edits = len(cluster.fake.edits)
                wrong = await wrong_answers(cluster, {m: q for r in results for m, q in r.questions.items()})
        except AssertionError as exc:  # a process exited badly or logged a traceback at shutdown
            clean_exit = False
            print(f"deployment did not shut down cleanly: {str(exc)[:2000]}")
        finally:
            server.stop()
    sent = [m for r in results for m in r.sent]
    lost = sum(1 for m in sent if counts[m] == 0)
    duplicated = sum(1 for m in sent if counts[m] > 1)
    late = sum(r.lost for r in results) - lost
    slowest = max((r.seconds for r in results), default=0.0)
    print(f"slowest trial {slowest:.1f}s; answers that came after their trial's deadline: {late}")
    print(f"texts still streaming at their trial's deadline: {sum(r.wrong for r in results) - wrong}")
    print(f"edits of streamed answers: {edits} (stream interval {args.stream_interval} s)")
    print(f"trials={len(results)} jobs={len(sent)} lost={lost} duplicated={duplicated} wrong={wrong}")
    return 1 if lost or duplicated or wrong or not clean_exit else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--users", type=int, default=4)
    parser.add_argument("--messages-per-user", type=int, default=3)
    parser.add_argument("--updater-kill-chance", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=random.randrange(1_000_000))
    parser.add_argument("--stream-interval", type=float, default=0.05, help="STREAM_INTERVAL_S; 0: whole answers")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
