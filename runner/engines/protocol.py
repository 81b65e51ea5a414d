"""What the worker loop asks of a model: requests join a running batch, and each comes out as it finishes.

An engine is stepped by one thread (runner/generation_thread.py for the runner, `generate_all` elsewhere):
`add` queues requests, each `step` advances every running one by a token, letting waiting ones join first when
the batch has room, and returns those that finished. Engines hold no locks, since only that thread touches them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from runner.images.seen import SeenImage
from shared.queues.schemas import Turn

GENERATION_ERRORS = (RuntimeError, ValueError, IndexError, TypeError)
"""What generation raises for one bad input (out of memory, invalid settings, token ids out of range).

Caught by the engine, so that one job's failure does not take down the others or the runner.
"""


@dataclass(frozen=True)
class GenerationRequest:
    """One job's generation: its conversation's earlier turns (oldest first), the new message, the system prompt
    when it is not the engine's own, and sampling settings."""

    job_id: str
    history: Sequence[Turn]
    message: str
    max_new_tokens: int
    temperature: float  # 0 means greedy
    top_p: float
    repetition_penalty: float
    min_new_tokens: int = 0  # end-of-sequence is ignored until then: benchmarks use it for answers of equal length
    system_prompt: str | None = None  # None: the engine's (SYSTEM_PROMPT)
    images: Sequence[SeenImage] = ()  # shown with `message`, before its words (only to an engine that sees images)


@dataclass(frozen=True)
class GenerationResult:
    """The answer to one request; `text` is None and `error` says why (no secrets, no prompt text) on failure."""

    job_id: str
    text: str | None
    error: str | None
    prompt_tokens: int
    new_tokens: int  # tokens generated, the end-of-sequence one included

    @classmethod
    def failed(cls, job_id: str, error: str, prompt_tokens: int = 0) -> GenerationResult:
        return cls(job_id=job_id, text=None, error=error, prompt_tokens=prompt_tokens, new_tokens=0)


class Engine(Protocol):
    description: str
    """One line for logs, e.g. "model=HuggingFaceTB/SmolLM2-135M-Instruct device=cpu dtype=bfloat16"."""
    sees_images: bool
    """Whether its model is shown a request's images (runners say so in their heartbeat)."""
    max_image_side: int
    """The longest side, in pixels, its model takes an image at: larger ones are scaled down before they are given."""

    @property
    def unfinished(self) -> int:
        """Requests added whose result `step` has not returned yet."""
        ...

    @property
    def accepting(self) -> bool:
        """Whether the runner should claim more jobs: False while an inference server the engine fronts is
        unreachable (the jobs in hand are kept meanwhile); always True for an in-process model."""
        ...

    def add(self, requests: Sequence[GenerationRequest]) -> None:
        """Queues requests; they join the batch at a later step, in order, as room allows."""
        ...

    def step(self) -> list[GenerationResult]:
        """One round of work (blocking): the results of the requests that finished in it, possibly none.

        A request that cannot be answered gets a result with `error` set; the others are unaffected.
        """
        ...

    def partial_texts(self) -> dict[str, str]:
        """The answer so far of each running request that has produced some text (job id -> text), for
        streaming; called between steps by the thread that steps the engine, at most every STREAM_INTERVAL_S."""
        ...

    def close(self) -> None:
        """Frees what the engine holds beyond memory (an inference server's connections); called once, after its
        last step, from a thread without a running event loop."""
        ...


def generate_all(engine: Engine, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
    """Steps an idle engine until every request is answered; results come in the order of `requests`."""
    if engine.unfinished:
        raise RuntimeError("generate_all needs an idle engine: another caller's results would be lost")
    engine.add(requests)
    results: dict[str, GenerationResult] = {}
    while engine.unfinished:
        results.update((result.job_id, result) for result in engine.step())
    return [results[request.job_id] for request in requests]
