"""`python bench/dtype_quality.py [--dtype D ...]`: what each lighter dtype changes in the built-in model's answers
against float32, and what it saves.

Greedy answers (64 new tokens, end-of-sequence honoured) to the 16 first questions of bench/questions.json in
float32 and in each `--dtype` (default: bfloat16 and float16-weights): how many are identical, and the mean
position of the first token that differs. Then batch-invariance, each dtype: how many answers are identical when
the question is answered alone and among the 16. Then the resident memory (VmRSS) of a process that has loaded the
model in each dtype (a fresh interpreter each, as a runner). For each dtype, the first question whose answer
differs is printed with both answers. On a CPU without native bfloat16 the bfloat16 runs are emulated (slow) but
give the same tokens. The last line is the summary.
"""

from __future__ import annotations

import argparse
import dataclasses
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import QUESTIONS, bench_settings  # noqa: E402
from runner.engines.choice import load_engine  # noqa: E402
from runner.engines.protocol import GenerationRequest, generate_all  # noqa: E402
from runner.engines.transformers.engine import TransformersEngine  # noqa: E402
from runner.weights.cpu_features import read_cpu_features  # noqa: E402
from shared.config.settings import FLOAT16_WEIGHTS  # noqa: E402

ANSWERS = 16
NEW_TOKENS = 64
RSS_SCRIPT = """
import dataclasses, gc, sys
sys.path.insert(0, {root!r})
from bench.throughput import bench_settings
from runner.engines.choice import load_engine
engine = load_engine(dataclasses.replace(bench_settings(), dtype={dtype!r}))
gc.collect()
status = open("/proc/self/status").read().split()
print(int(status[status.index("VmRSS:") + 1]) // 1024)
"""


def requests() -> list[GenerationRequest]:
    return [GenerationRequest(f"q{i}", (), QUESTIONS[i], NEW_TOKENS, 0.0, 1.0, 1.1) for i in range(ANSWERS)]


def answer_texts(engine: TransformersEngine, batch: list[GenerationRequest]) -> list[str]:
    return [result.text or "" for result in generate_all(engine, batch)]


def tokens_of(engine: TransformersEngine, texts: list[str]) -> list[list[int]]:
    """Each answer's tokens, as the engine's tokenizer encodes its text (the engine returns text)."""
    return [engine.tokenizer.encode(text, add_special_tokens=False) for text in texts]


def first_difference(a: list[int], b: list[int]) -> int | None:
    for index, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return index
    return None if len(a) == len(b) else min(len(a), len(b))


def engine_in(dtype: str) -> TransformersEngine:
    engine = load_engine(dataclasses.replace(bench_settings(), dtype=dtype, batch_size=ANSWERS))
    assert isinstance(engine, TransformersEngine)
    return engine


def resident_mib(dtype: str) -> int:
    script = RSS_SCRIPT.format(root=str(ROOT), dtype=dtype)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return int(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dtype", nargs="+", default=["bfloat16", FLOAT16_WEIGHTS])
    dtypes = ["float32", *parser.parse_args().dtype]
    print(f"CPU: {read_cpu_features().summary()}; {ANSWERS} questions, {NEW_TOKENS} new tokens, greedy")
    texts: dict[str, list[str]] = {}
    together: dict[str, list[list[int]]] = {}
    alone_same: dict[str, int] = {}
    for dtype in dtypes:
        engine = engine_in(dtype)
        print(engine.description, flush=True)
        batch = requests()
        texts[dtype] = answer_texts(engine, batch)
        together[dtype] = tokens_of(engine, texts[dtype])
        alone = tokens_of(engine, [answer_texts(engine, [request])[0] for request in batch])
        alone_same[dtype] = sum(a == b for a, b in zip(alone, together[dtype], strict=True))
    summary = []
    for dtype in dtypes[1:]:
        pairs = list(zip(together["float32"], together[dtype], strict=True))
        identical = sum(a == b for a, b in pairs)
        firsts = [d for a, b in pairs if (d := first_difference(a, b)) is not None]
        mean_first = sum(firsts) / len(firsts) if firsts else float("nan")
        print(f"identical float32/{dtype} answers: {identical} of {ANSWERS}; first differing token at {mean_first:.1f}")
        summary.append(f"identical_{dtype}={identical}/{ANSWERS} first_difference_{dtype}={mean_first:.1f}")
        differing = next((i for i, (a, b) in enumerate(pairs) if a != b), None)
        if differing is not None:
            print(f"  first that differs: {QUESTIONS[differing]}")
            print(f"    float32: {texts['float32'][differing]}\n    {dtype}: {texts[dtype][differing]}")
    print(f"same answer alone and in a batch of {ANSWERS}: " + ", ".join(f"{d} {alone_same[d]}" for d in dtypes))
    rss = {dtype: resident_mib(dtype) for dtype in dtypes}
    print("resident memory once loaded: " + ", ".join(f"{d} {rss[d]} MiB" for d in dtypes))
    summary += [f"batch_invariant_{d}={alone_same[d]}/{ANSWERS}" for d in dtypes]
    summary += [f"rss_mib_{d}={rss[d]}" for d in dtypes]
    print(" ".join(summary))


if __name__ == "__main__":
    main()
