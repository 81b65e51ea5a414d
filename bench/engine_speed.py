"""`python bench/engine_speed.py [--dtype D ...] [--batch N ...] [--new-tokens N]`: the engine's speed per dtype.

Loads MODEL as the runner does (settings from the environment and .env) and prints load time, the start-up
diagnostic, the time to read one long prompt and batched greedy throughput, to compare dtypes and batch sizes
on a machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from runner.diagnostic import greedy_request, run_diagnostic  # noqa: E402
from runner.engines.choice import load_engine  # noqa: E402
from runner.engines.protocol import Engine, generate_all  # noqa: E402
from shared.config.settings import Settings  # noqa: E402

BENCH_TOPICS = (
    "a dragon",
    "the sea",
    "a robot",
    "a small village",
    "the moon",
    "a lost cat",
    "a library",
    "a storm",
    "a train",
    "a garden",
    "a mountain",
    "a clock maker",
    "a city at night",
    "a lighthouse",
    "a forest",
    "a river",
)
"""Long-story prompts, so that nearly every answer runs to the full token budget when timing batches."""


def measure_batch(engine: Engine, batch_size: int, new_tokens: int) -> tuple[int, float]:
    """Greedy-generates `batch_size` different prompts together; returns (tokens generated, seconds)."""
    requests = [
        greedy_request(f"bench-{i}", f"Tell me a long story about {BENCH_TOPICS[i % len(BENCH_TOPICS)]}.", new_tokens)
        for i in range(batch_size)
    ]
    generate_all(engine, requests[:1])  # warm-up: first-call allocations are not what a serving runner pays
    started = time.perf_counter()
    results = generate_all(engine, requests)
    return sum(r.new_tokens for r in results), time.perf_counter() - started


def measure_prompt(engine: Engine, prompt_words: int) -> tuple[int, float]:
    """Reads one long prompt and generates a single token; returns (prompt tokens, seconds)."""
    message = " ".join(f"{BENCH_TOPICS[i % len(BENCH_TOPICS)]} and" for i in range(prompt_words // 3))
    started = time.perf_counter()
    [result] = generate_all(engine, [greedy_request("bench-prompt", message, 1)])
    return result.prompt_tokens, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--batch", nargs="+", type=int, default=[1, 16])
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--prompt-words", type=int, default=500, help="length of the prompt-reading test")
    args = parser.parse_args()
    base = Settings.from_env()
    for dtype in args.dtype:
        settings = dataclasses.replace(base, dtype=dtype, batch_size=max(args.batch))
        started = time.perf_counter()
        engine = load_engine(settings)
        report = run_diagnostic(engine, time.perf_counter() - started)
        print(
            f"{report.description} load_s={report.load_s:.1f} diagnostic: {report.new_tokens} tokens "
            f"in {report.generate_s:.2f} s = {report.tokens_per_s:.1f} tok/s",
            flush=True,
        )
        prompt_tokens, seconds = measure_prompt(engine, args.prompt_words)
        print(f"  dtype={dtype} prompt of {prompt_tokens} tokens + 1 new: {seconds:.2f} s", flush=True)
        for batch_size in args.batch:
            tokens, seconds = measure_batch(engine, batch_size, args.new_tokens)
            print(
                f"  dtype={dtype} batch={batch_size} new_tokens={tokens} {seconds:.2f} s "
                f"= {tokens / seconds:.1f} tok/s",
                flush=True,
            )


if __name__ == "__main__":
    main()
