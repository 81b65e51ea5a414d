"""`python bench/sampling.py`: what sampled answers (the default TEMPERATURE=0.7, TOP_P=0.9) cost per step.

The built-in model's real next-token logits for 16 questions from bench/questions.json, then:
- the time to choose 16 tokens from them (penalty, temperature, top-p, draw), with top-p looked for among the
  NUCLEUS_CANDIDATES best tokens (the runner's way) and over the whole vocabulary (sorting every row);
- the engine alone generating 16 sampled answers of exactly 64 tokens, both ways.
Each figure is the best of ROUNDS alternated runs. The last line is the summary.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from bench.throughput import NEW_TOKENS, bench_settings  # noqa: E402
from bench.throughput import request as greedy_request  # noqa: E402
from runner.engines.choice import load_engine  # noqa: E402
from runner.engines.protocol import GenerationRequest, generate_all  # noqa: E402
from runner.engines.transformers import sampling  # noqa: E402
from runner.engines.transformers.engine import TransformersEngine  # noqa: E402
from shared.config.settings import Settings  # noqa: E402

ROWS = 16
ROUNDS = 3
TEMPERATURE = 0.7
TOP_P = 0.9
WHOLE_VOCABULARY = 10**9


def request(index: int, settings: Settings) -> GenerationRequest:
    """The throughput benchmark's request, sampled instead of greedy."""
    return dataclasses.replace(greedy_request(index, settings), temperature=TEMPERATURE, top_p=TOP_P)


def choose_ms(rows: list[sampling.RowSampler], logits: torch.Tensor, prompts: list[list[int]]) -> float:
    generated: list[list[int]] = [[] for _ in rows]
    sampling.choose_tokens(rows, logits, prompts, generated)
    started = time.perf_counter()
    for _ in range(20):
        sampling.choose_tokens(rows, logits, prompts, generated)
    return (time.perf_counter() - started) / 20 * 1000


def engine_tok_s(engine: TransformersEngine, requests: list[GenerationRequest]) -> float:
    started = time.perf_counter()
    results = generate_all(engine, requests)
    assert all(r.new_tokens == NEW_TOKENS for r in results), [r.error for r in results if r.error]
    return ROWS * NEW_TOKENS / (time.perf_counter() - started)


def main() -> None:
    settings = bench_settings()
    engine = load_engine(settings)
    assert isinstance(engine, TransformersEngine), "this benchmark needs a transformers model"
    print(f"{engine.description}; {ROWS} rows, temperature {TEMPERATURE}, top-p {TOP_P}")
    requests = [request(i, settings) for i in range(ROWS)]
    prompts = [engine.prompt_ids(r) for r in requests]
    with torch.inference_mode():
        logits = torch.stack([engine.model(input_ids=torch.tensor([p])).logits[0, -1].float() for p in prompts])
    rows = [sampling.RowSampler(r, engine.eos_token_ids) for r in requests]
    nucleus = torch.isfinite(sampling.processed_scores(rows, logits, prompts, [[] for _ in rows])).sum(dim=-1)
    print(f"nucleus sizes: {nucleus.tolist()}")
    default = sampling.NUCLEUS_CANDIDATES
    best: dict[str, float] = {}
    for _ in range(ROUNDS):
        for name, candidates in (("candidates", default), ("whole_vocab", WHOLE_VOCABULARY)):
            sampling.NUCLEUS_CANDIDATES = candidates
            ms = choose_ms(rows, logits, prompts)
            best[f"choose_ms_{name}"] = min(best.get(f"choose_ms_{name}", ms), ms)
            best[f"engine_tok_s_{name}"] = max(best.get(f"engine_tok_s_{name}", 0.0), engine_tok_s(engine, requests))
    sampling.NUCLEUS_CANDIDATES = default
    print(
        f"rows={ROWS} choose_ms={best['choose_ms_candidates']:.1f} "
        f"choose_ms_whole_vocab={best['choose_ms_whole_vocab']:.1f} "
        f"engine_tok_s={best['engine_tok_s_candidates']:.1f} "
        f"engine_tok_s_whole_vocab={best['engine_tok_s_whole_vocab']:.1f}"
    )


if __name__ == "__main__":
    main()
