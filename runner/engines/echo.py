"""An engine without a model: answers with the message itself, for testing deployments and the queue's speed."""

from __future__ import annotations

import time
from collections.abc import Sequence

from runner.engines.protocol import GenerationRequest, GenerationResult

ECHO_STEPS = 20
"""Steps a delayed answer takes: requests added meanwhile share the following steps, as rows of a model's batch."""


class EchoEngine:
    """Answers "echo: <message>" at once, or `delay_s` after it was added, to stand in for a batched GPU: the
    delay is spent in ECHO_STEPS steps that every request in the engine shares, so however many run together,
    each takes `delay_s` (a runner with BATCH_SIZE=N answers up to N per `delay_s`).

    Tokens are counted as whitespace-separated words; the answer is never cut, so tests can predict it exactly.
    """

    def __init__(self, delay_s: float = 0.0) -> None:
        if delay_s < 0:
            raise ValueError("delay_s must not be negative")
        self.delay_s = delay_s
        self.description = f"model=echo delay_s={delay_s:g}"
        self.sees_images = False
        self.max_image_side = 0
        self.running: list[tuple[GenerationRequest, int]] = []
        """Each request with the steps it still takes."""

    @property
    def unfinished(self) -> int:
        return len(self.running)

    @property
    def accepting(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def add(self, requests: Sequence[GenerationRequest]) -> None:
        steps = ECHO_STEPS if self.delay_s else 1
        self.running.extend((request, steps) for request in requests)

    def partial_texts(self) -> dict[str, str]:
        """The answer's words in proportion to the steps done, so a delayed echo streams like a model."""
        partial = {}
        for request, steps in self.running:
            words = _answer_text(request).split(" ")
            shown = len(words) * (ECHO_STEPS - steps) // ECHO_STEPS
            if shown:
                partial[request.job_id] = " ".join(words[:shown])
        return partial

    def step(self) -> list[GenerationResult]:
        if self.delay_s and self.running:
            time.sleep(self.delay_s / ECHO_STEPS)
        advanced = [(request, steps - 1) for request, steps in self.running]
        self.running = [(request, steps) for request, steps in advanced if steps > 0]
        return [self._answer(request) for request, steps in advanced if steps == 0]

    @staticmethod
    def _answer(request: GenerationRequest) -> GenerationResult:
        prompt_words = sum(len(turn["content"].split()) for turn in request.history) + len(request.message.split())
        text = _answer_text(request)
        return GenerationResult(
            job_id=request.job_id, text=text, error=None, prompt_tokens=prompt_words, new_tokens=len(text.split())
        )


def _answer_text(request: GenerationRequest) -> str:
    return f"echo: {request.message}"
