"""An engine without a model: answers with the message itself, for testing deployments and the queue's speed."""

from __future__ import annotations

import time
from collections.abc import Sequence

from runner.engine import GenerationRequest, GenerationResult


class EchoEngine:
    """Answers "echo: <message>" at once, or after `delay_s` per generate() call to stand in for a batched GPU.

    Tokens are counted as whitespace-separated words; the answer is never cut, so tests can predict it exactly.
    """

    def __init__(self, delay_s: float = 0.0) -> None:
        if delay_s < 0:
            raise ValueError("delay_s must not be negative")
        self.delay_s = delay_s
        self.description = f"model=echo delay_s={delay_s:g}"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        if self.delay_s and requests:
            time.sleep(self.delay_s)
        return [self._answer(request) for request in requests]

    @staticmethod
    def _answer(request: GenerationRequest) -> GenerationResult:
        prompt_words = sum(len(turn["content"].split()) for turn in request.history) + len(request.message.split())
        text = f"echo: {request.message}"
        return GenerationResult(
            job_id=request.job_id, text=text, error=None, prompt_tokens=prompt_words, new_tokens=len(text.split())
        )
