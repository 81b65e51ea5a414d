"""The runner's start-up check: one short greedy generation that proves the model answers, and how fast."""

from __future__ import annotations

import time
from dataclasses import dataclass

from runner.engines.protocol import GENERATION_ERRORS, Engine, GenerationRequest, generate_all
from runner.errors import DiagnosticError

DIAGNOSTIC_MESSAGE = "What is the capital of France?"
DIAGNOSTIC_NEW_TOKENS = 16
"""Tokens the start-up generation may produce: enough to time it, short enough to keep start-up quick."""


@dataclass(frozen=True)
class DiagnosticReport:
    description: str
    load_s: float
    new_tokens: int
    generate_s: float
    tokens_per_s: float


def run_diagnostic(engine: Engine, load_s: float) -> DiagnosticReport:
    """Generates a short greedy answer; raises DiagnosticError when the engine cannot answer at all."""
    request = greedy_request("diagnostic", DIAGNOSTIC_MESSAGE, DIAGNOSTIC_NEW_TOKENS)
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


def greedy_request(job_id: str, message: str, max_new_tokens: int) -> GenerationRequest:
    """A request with no history, greedy and unpenalised, so that its answer is the same on every run."""
    return GenerationRequest(
        job_id=job_id,
        history=(),
        message=message,
        max_new_tokens=max_new_tokens,
        temperature=0.0,
        top_p=1.0,
        repetition_penalty=1.0,
    )
