"""The runner's start-up check: one short greedy generation that proves the model answers, and how fast.

`python -m runner.diagnostic [--dtype D ...] [--batch N ...] [--new-tokens N]` loads MODEL as the runner does
(settings from the environment and .env) and prints load time, the diagnostic and batched greedy throughput,
to compare dtypes and batch sizes on a machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from dataclasses import dataclass

from runner.engine import GENERATION_ERRORS, Engine, GenerationRequest, generate_all
from runner.engine_choice import load_engine
from runner.errors import DiagnosticError
from shared.settings import Settings

DIAGNOSTIC_MESSAGE = "What is the capital of France?"
DIAGNOSTIC_NEW_TOKENS = 16
"""Tokens the start-up generation may produce: enough to time it, short enough to keep start-up quick."""

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


@dataclass(frozen=True)
class DiagnosticReport:
    description: str
    load_s: float
    new_tokens: int
    generate_s: float
    tokens_per_s: float


def run_diagnostic(engine: Engine, load_s: float) -> DiagnosticReport:
    """Generates a short greedy answer; raises DiagnosticError when the engine cannot answer at all."""
    request = _greedy_request("diagnostic", DIAGNOSTIC_MESSAGE, DIAGNOSTIC_NEW_TOKENS)
    started = time.perf_counter()
    try:
        [result] = generate_all(engine, [request])
    except GENERATION_ERRORS as exc:
        raise DiagnosticError(f"the start-up generation raised {type(exc).__name__}: {exc}") from None
    generate_s = time.perf_counter() - started
    if result.text is None:
        raise DiagnosticError(f"the start-up generation failed: {result.error}")
    if result.new_tokens < 1:
        raise DiagnosticError("the start-up generation produced no tokens")
    return DiagnosticReport(
        description=engine.description,
        load_s=load_s,
        new_tokens=result.new_tokens,
        generate_s=generate_s,
        tokens_per_s=result.new_tokens / generate_s if generate_s > 0 else 0.0,
    )


def _greedy_request(job_id: str, message: str, max_new_tokens: int) -> GenerationRequest:
    return GenerationRequest(
        job_id=job_id,
        history=(),
        message=message,
        max_new_tokens=max_new_tokens,
        temperature=0.0,
        top_p=1.0,
        repetition_penalty=1.0,
    )


def measure_batch(engine: Engine, batch_size: int, new_tokens: int) -> tuple[int, float]:
    """Greedy-generates `batch_size` different prompts together; returns (tokens generated, seconds)."""
    requests = [
        _greedy_request(f"bench-{i}", f"Tell me a long story about {BENCH_TOPICS[i % len(BENCH_TOPICS)]}.", new_tokens)
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
    [result] = generate_all(engine, [_greedy_request("bench-prompt", message, 1)])
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
