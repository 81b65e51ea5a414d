"""The OpenAI-compatible engine: up to BATCH_SIZE streamed chat completions in flight (the server batches them),
on an event loop of its own that runs while the generation thread is in `step`, so no lock is needed.

Faults (runner/engines/openai/faults.py): while the server cannot be used the jobs in hand are kept and retried
and `accepting` is False, so the runner claims no more; 5xx are retried SERVER_ERROR_RETRIES times, then the job
fails; any other 4xx fails the job. Until the server has answered once (the start-up diagnostic) every fault
fails the request instead, so that a runner never starts in front of a server it cannot use.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Sequence

import openai
from openai import AsyncOpenAI

from runner.engines.openai.chat import MIN_TOKENS_DIALECTS, chat_messages, extra_fields
from runner.engines.openai.faults import Fault, FaultKind, IncompleteAnswer, classify
from runner.engines.openai.thinking import StreamedAnswer, reasoning_delta
from runner.engines.protocol import GenerationRequest, GenerationResult
from shared.config.secret import Secret, redact_url_password
from shared.storage.client import Backoff

log = logging.getLogger(__name__)

STEP_WAIT_S = 0.05
"""Longest a step waits for an answer to finish, so the generation thread takes new jobs and streams partials."""
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 300.0
"""Longest wait for the next bytes of an answer (a busy server may queue a request that long before its first
token); past it the server is taken for gone and the request is sent again."""
SERVER_ERROR_RETRIES = 3
SERVER_ERROR_BACKOFF_S = 1.0
"""A job's first retry after a server error waits this long, each next one twice as long (1, 2, 4 s)."""
OUTAGE_BACKOFF_CAP_S = 10.0
"""Longest wait between two tries of a job while the server cannot be used (jittered, exponential from 0.25 s)."""
PLACEHOLDER_API_KEY = "EMPTY"
"""Sent when OPENAI_API_KEY is empty (the openai package insists on one; servers without keys ignore it)."""
MAX_IMAGE_SIDE = 2048
"""Images are scaled down to at most this many pixels a side before they are sent (the server scales them again to
what its model takes): a request stays a few MB at most."""


class OpenAIEngine:
    """Streams each job's answer from the server at `base_url`; `partial_texts` shows every answer as it grows."""

    def __init__(
        self,
        model: str,
        base_url: str,
        api_key: Secret,
        system_prompt: str,
        max_in_flight: int,
        *,
        sees_images: bool = False,
    ) -> None:
        self.model = model
        self.sees_images = sees_images
        """MODEL_SEES_IMAGES: nothing in the OpenAI API says whether a served model sees."""
        self.max_image_side = MAX_IMAGE_SIDE if sees_images else 0
        self.base_url = base_url
        self.system_prompt = system_prompt
        self.max_in_flight = max_in_flight
        self.description = f"model=openai:{model} server={redact_url_password(base_url)} in_flight={max_in_flight}"
        self.description += " images=seen" if sees_images else ""
        self._api_key = api_key
        # The HTTP client logs every request at INFO; the runner logs one line per job.
        logging.getLogger("httpx2").setLevel(logging.WARNING)
        self._loop = asyncio.new_event_loop()
        self._client = AsyncOpenAI(
            base_url=base_url,
            api_key=api_key.reveal() or PLACEHOLDER_API_KEY,
            max_retries=0,  # retried here, where faults are told apart
            timeout=openai.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S),
        )
        self._waiting: deque[GenerationRequest] = deque()
        self._running: set[asyncio.Task[GenerationResult]] = set()
        self._answers: dict[str, StreamedAnswer] = {}
        self._prompt_opens_thinking = False
        """Learned from the first answer that ended its thinking with a bare `</think>`: the model's chat template
        opens a think block in the prompt, so every later answer starts hidden until its `</think>`."""
        self._min_tokens_dialect = 0
        self._answered_once = False
        self._outage: Fault | None = None
        self._outage_since = 0.0
        self._back = asyncio.Event()

    @property
    def unfinished(self) -> int:
        return len(self._waiting) + len(self._running)

    @property
    def accepting(self) -> bool:
        """False while the server cannot be used: the runner claims no new jobs until it can."""
        return self._outage is None

    def add(self, requests: Sequence[GenerationRequest]) -> None:
        self._waiting.extend(requests)

    def step(self) -> list[GenerationResult]:
        while self._waiting and len(self._running) < self.max_in_flight:
            self._running.add(self._loop.create_task(self._answer(self._waiting.popleft())))
        if self._running:
            self._loop.run_until_complete(
                asyncio.wait(self._running, timeout=STEP_WAIT_S, return_when=asyncio.FIRST_COMPLETED)
            )
        done = {task for task in self._running if task.done()}
        self._running -= done
        return [task.result() for task in done]

    def partial_texts(self) -> dict[str, str]:
        texts = {job_id: answer.text(self._prompt_opens_thinking) for job_id, answer in self._answers.items()}
        return {job_id: text for job_id, text in texts.items() if text}

    def close(self) -> None:
        """Abandons the requests in flight, closes the connections and lets the event loop finish its tasks."""
        self._loop.run_until_complete(self._close())
        self._loop.run_until_complete(self._loop.shutdown_asyncgens())
        # Streams closed above leave their readers' clean-up to tasks of the loop's own: let them end here,
        # or they are destroyed pending at exit (an asyncio error in the log).
        leftover = asyncio.all_tasks(self._loop)
        if leftover:
            self._loop.run_until_complete(asyncio.wait(leftover, timeout=CONNECT_TIMEOUT_S))
        self._loop.close()

    async def _close(self) -> None:
        for task in self._running:
            task.cancel()
        await asyncio.gather(*self._running, return_exceptions=True)
        await self._client.close()

    async def _answer(self, request: GenerationRequest) -> GenerationResult:
        server_errors = 0
        backoff = Backoff(base_s=0.25, cap_s=OUTAGE_BACKOFF_CAP_S)
        try:
            while True:
                self._answers[request.job_id] = StreamedAnswer()  # a request sent again starts its answer again
                dialect = self._min_tokens_dialect
                try:
                    return await self._stream(request, dialect)
                except (openai.APIError, IncompleteAnswer) as exc:
                    fault = classify(exc, self.model, self._api_key.reveal())
                if fault.status in (400, 422) and request.min_new_tokens and self._other_min_tokens_dialect(dialect):
                    continue
                if not self._answered_once:
                    return self._failed(request, fault)
                if fault.kind is FaultKind.UNAVAILABLE:
                    self._server_unusable(fault)
                    await self._wait_for_server(backoff.next_delay())
                    continue
                self._server_usable()  # it answered, if only with an error
                if fault.kind is not FaultKind.SERVER_ERROR or server_errors == SERVER_ERROR_RETRIES:
                    return self._failed(request, fault)
                server_errors += 1
                delay = SERVER_ERROR_BACKOFF_S * 2 ** (server_errors - 1)
                log.warning(
                    "job %s: %s; retry %d of %d in %.0f s",
                    request.job_id,
                    self._about_server(fault),
                    server_errors,
                    SERVER_ERROR_RETRIES,
                    delay,
                )
                await asyncio.sleep(delay)
        finally:
            self._answers.pop(request.job_id, None)

    async def _stream(self, request: GenerationRequest, min_tokens_dialect: int) -> GenerationResult:
        stream = await self._client.chat.completions.create(
            model=self.model,
            messages=chat_messages(request, self.system_prompt),
            max_tokens=request.max_new_tokens,
            temperature=request.temperature,
            top_p=request.top_p,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=extra_fields(request, min_tokens_dialect),
        )
        self._server_usable()
        answer = self._answers[request.job_id]
        chunks, finish_reason, usage = 0, None, None
        async with stream:
            async for chunk in stream:
                usage = chunk.usage or usage
                for choice in chunk.choices:
                    thought = reasoning_delta(choice.delta)
                    answer.reasoning += thought
                    if choice.delta.content:
                        answer.content += choice.delta.content
                    chunks += bool(thought or choice.delta.content)
                    finish_reason = finish_reason or choice.finish_reason
        if finish_reason is None:
            raise IncompleteAnswer
        self._answered_once = True
        if not self._prompt_opens_thinking and answer.shows_prompt_opened_thinking():
            self._prompt_opens_thinking = True
            log.info("model %s thinks before it answers (a bare </think>): answers start hidden until then", self.model)
        return GenerationResult(
            job_id=request.job_id,
            text=answer.text(self._prompt_opens_thinking, finish_reason),
            error=None,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            # Servers that send no usage: one token per streamed piece, which most servers send.
            new_tokens=usage.completion_tokens if usage else chunks,
        )

    def _failed(self, request: GenerationRequest, fault: Fault) -> GenerationResult:
        return GenerationResult.failed(request.job_id, self._about_server(fault))

    def _about_server(self, fault: Fault) -> str:
        return f"OpenAI-compatible server {redact_url_password(self.base_url)} {fault.reason}"

    def _server_unusable(self, fault: Fault) -> None:
        if self._outage is None:
            self._outage, self._outage_since = fault, time.monotonic()
            self._back = asyncio.Event()
            log.warning(
                "%s: retrying the jobs in hand (%d), taking no new ones until it answers",
                self._about_server(fault),
                self.unfinished,
            )

    def _server_usable(self) -> None:
        if self._outage is not None:
            log.info(
                "OpenAI-compatible server %s answers again after %.1f s",
                redact_url_password(self.base_url),
                time.monotonic() - self._outage_since,
            )
            self._outage = None
            self._back.set()

    async def _wait_for_server(self, delay_s: float) -> None:
        """Sleeps `delay_s`, or less if another job finds the server back meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._back.wait(), delay_s)

    def _other_min_tokens_dialect(self, refused: int) -> bool:
        """Whether there is another way to ask for a minimum answer length than the `refused` one; the first
        request refused moves every later one on to the next way."""
        if refused == self._min_tokens_dialect:
            if refused + 1 == len(MIN_TOKENS_DIALECTS):
                return False
            self._min_tokens_dialect += 1
            log.info(
                "the server refused a minimum answer length asked with %s; asking with %s",
                MIN_TOKENS_DIALECTS[refused][0],
                MIN_TOKENS_DIALECTS[self._min_tokens_dialect][0],
            )
        return True
