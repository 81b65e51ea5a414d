"""`python bench/throughput.py [--quick]`: tokens per second of the built-in model, four ways, in one run.

Every request is one of the Discord questions in bench/questions.json and generates exactly NEW_TOKENS tokens
(greedy, end-of-sequence ignored), so every way does the same work:
(a) sequential: transformers' `model.generate`, one request at a time, as the seed's runner did, on the runner's
    own model (same dtype; on a CPU its linear layers packed as the runner packs them, runner/weights/packing.py);
    the seed's exact configuration (float32, torch's own linear layers) is timed the same way as a second baseline;
(b) pipeline: a real redis-server and one `python -m runner`; C users each send a question at the same moment,
    enqueued as the bot enqueues them, and the answers are read from the response list;
(c) raw batch: one `model.generate` of the same C prompts, left-padded, on the runner's model: the upper bound
    for (b), since every job is there from the start and all are of equal length (a static batch's best case);
(d) engine: the runner's own engine, in this process, given the same C prompts at once (no Redis).
(a) to (d) are each the best of ROUNDS runs, alternated (the machine's speed drifts by ~10%). The last line
is the summary at C=16: speedup = b/a, efficiency = b/c, pipeline_over_engine = b/d, speedup_over_seed = b / the
seed's configuration. The header names the dtype, why it was chosen, and the CPU (`DTYPE=float32 python
bench/throughput.py` forces float32 where auto picks bfloat16 or float16 weights).

`--engine openai --base-url URL --model ID` measures a runner in front of an OpenAI-compatible server instead
(bench/remote_throughput.py).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import cast

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from generation_pipeline import (  # noqa: E402
    MOST_USERS,
    NEW_TOKENS,
    Pipeline,
    bench_settings,
    request,
)
from transformers import AutoModelForCausalLM, GenerationConfig, PreTrainedModel  # noqa: E402

from runner.engines.choice import load_engine  # noqa: E402
from runner.engines.protocol import generate_all  # noqa: E402
from runner.engines.transformers.engine import TransformersEngine  # noqa: E402
from runner.weights.cpu_features import read_cpu_features  # noqa: E402
from runner.weights.source import resolve_model  # noqa: E402
from shared.config.settings import Settings  # noqa: E402

CONCURRENCY = (1, 4, 16, MOST_USERS)
QUICK_CONCURRENCY = (1, 16)
SUMMARY_CONCURRENCY = 16
SEQUENTIAL_REQUESTS = 4
"""Requests timed one at a time in each round (after one untimed); tokens/s alone does not depend on users."""
ROUNDS = 3
"""(a) to (d) are each measured this many times, alternately, and the best kept: the machine may be shared."""


def generate(model: PreTrainedModel, engine: TransformersEngine, settings: Settings, prompts: list[list[int]]) -> float:
    """Seconds `model.generate` takes for `prompts` as one left-padded batch, with the runner's sampling settings."""
    config = GenerationConfig(  # type: ignore[no-untyped-call]
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=NEW_TOKENS,
        do_sample=False,
        repetition_penalty=settings.repetition_penalty,
        eos_token_id=engine.eos_token_ids,
        pad_token_id=engine.tokenizer.pad_token_id,
    )
    pad = cast(int, engine.tokenizer.pad_token_id)
    length = max(len(prompt) for prompt in prompts)
    input_ids = [[pad] * (length - len(prompt)) + prompt for prompt in prompts]
    mask = [[0] * (length - len(prompt)) + [1] * len(prompt) for prompt in prompts]
    started = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(  # type: ignore[operator]
            input_ids=torch.tensor(input_ids, device=model.device),
            attention_mask=torch.tensor(mask, device=model.device),
            generation_config=config,
        )
    elapsed = time.perf_counter() - started
    assert output.shape[1] - length == NEW_TOKENS
    return elapsed


def sequential_tok_s(model: PreTrainedModel, engine: TransformersEngine, settings: Settings, count: int) -> float:
    """(a): `model.generate` on one prompt at a time."""
    prompts = [engine.prompt_ids(request(i, settings)) for i in range(count + 1)]
    generate(model, engine, settings, prompts[:1])  # warm-up
    return count * NEW_TOKENS / sum(generate(model, engine, settings, [prompt]) for prompt in prompts[1:])


def raw_generate_tok_s(engine: TransformersEngine, settings: Settings, concurrency: int) -> float:
    """(c): one `model.generate` of all `concurrency` prompts, on the runner's model."""
    prompts = [engine.prompt_ids(request(i, settings)) for i in range(concurrency)]
    return concurrency * NEW_TOKENS / generate(engine.model, engine, settings, prompts)


def seed_model(settings: Settings) -> PreTrainedModel:
    """The model as the seed's runner loaded it: float32, torch's own linear layers (not packed for oneDNN)."""
    directory = resolve_model(settings).directory
    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32, local_files_only=True)
    return cast(PreTrainedModel, model.eval())


def engine_tok_s(engine: TransformersEngine, settings: Settings, concurrency: int) -> float:
    """(d): the runner's engine alone, in this process, all `concurrency` prompts added at once."""
    requests = [request(i, settings) for i in range(concurrency)]
    started = time.perf_counter()
    results = generate_all(engine, requests)
    elapsed = time.perf_counter() - started
    assert all(r.new_tokens == NEW_TOKENS for r in results), [r.error for r in results if r.error]
    return sum(r.new_tokens for r in results) / elapsed


async def main(quick: bool) -> None:
    settings = bench_settings()
    levels = QUICK_CONCURRENCY if quick else CONCURRENCY
    with tempfile.TemporaryDirectory(prefix="throughput-") as work_dir:
        pipeline = Pipeline(Path(work_dir), settings)
        try:
            engine = load_engine(settings)
            assert isinstance(engine, TransformersEngine), "this benchmark needs a transformers model"
            # engine.description names the dtype and why (dtype_reason=[...]); the CPU line, what decided it.
            print(f"{engine.description}; {NEW_TOKENS} new tokens per request, greedy, end-of-sequence ignored")
            print(f"cpu: {read_cpu_features().summary()}; torch threads {torch.get_num_threads()}")
            await pipeline.start()
            requests = SEQUENTIAL_REQUESTS // (2 if quick else 1)
            unpacked = seed_model(settings)
            sequential = seed = 0.0
            for _ in range(ROUNDS):  # best of ROUNDS, alternated, as for (b) and (c)
                sequential = max(sequential, sequential_tok_s(engine.model, engine, settings, requests))
                seed = max(seed, sequential_tok_s(unpacked, engine, settings, requests))
            del unpacked
            print(f"(a) sequential model.generate, one request at a time, the runner's model: {sequential:.1f} tok/s")
            print(f"seed baseline (model.generate, float32, unpacked, one request at a time): {seed:.1f} tok/s")
            print(
                f"{'users':>5} {'sequential_tok_s':>17} {'pipeline_tok_s':>15} {'raw_batch_tok_s':>16} "
                f"{'engine_tok_s':>13} {'speedup':>8} {'efficiency':>10} {'pipeline_over_engine':>20}"
            )
            rows = {}
            for concurrency in levels:
                raw = alone = piped = 0.0
                for _ in range(ROUNDS):  # alternated, so that a slower spell of the machine hits all alike
                    raw = max(raw, raw_generate_tok_s(engine, settings, concurrency))
                    alone = max(alone, engine_tok_s(engine, settings, concurrency))
                    piped = max(piped, await pipeline.tok_s(concurrency))
                rows[concurrency] = (piped, raw, alone)
                print(
                    f"{concurrency:>5} {sequential:>17.1f} {piped:>15.1f} {raw:>16.1f} {alone:>13.1f} "
                    f"{piped / sequential:>8.2f} {piped / raw:>10.2f} {piped / alone:>20.2f}",
                    flush=True,
                )
        finally:
            await pipeline.close()
    piped, raw, alone = rows[SUMMARY_CONCURRENCY]
    print(
        f"concurrency={SUMMARY_CONCURRENCY} sequential_tok_s={sequential:.1f} pipeline_tok_s={piped:.1f} "
        f"raw_batch_tok_s={raw:.1f} speedup={piped / sequential:.2f} efficiency={piped / raw:.2f} "
        f"engine_tok_s={alone:.1f} pipeline_over_engine={piped / alone:.2f} seed_tok_s={seed:.1f} "
        f"speedup_over_seed={piped / seed:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"only {QUICK_CONCURRENCY} users, fewer sequential runs")
    parser.add_argument(
        "--engine",
        choices=("builtin", "openai"),
        default="builtin",
        help="openai: a runner in front of the OpenAI-compatible server at --base-url (bench/remote_throughput.py)",
    )
    parser.add_argument("--base-url", help="with --engine openai: the server's /v1 URL")
    parser.add_argument("--model", help="with --engine openai: the model id the server knows")
    parser.add_argument("--api-key", default=os.environ.get("OPENAI_API_KEY", ""), help="default: $OPENAI_API_KEY")
    parser.add_argument("--rounds", type=int, default=ROUNDS, help="with --engine openai: rounds of each way")
    args = parser.parse_args()
    if args.engine == "openai":
        if not args.base_url or not args.model:
            parser.error("--engine openai needs --base-url and --model")
        import remote_throughput

        asyncio.run(remote_throughput.main(args.base_url, args.model, args.api_key, args.rounds))
    else:
        asyncio.run(main(args.quick))
