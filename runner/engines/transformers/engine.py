"""Continuous batching with a transformers causal LM: jobs join a running batch and leave it as each one finishes.

A static batch wastes the steps of rows that finished early and holds back jobs that arrive while it runs, and
transformers' own continuous batching costs a CPU more than it saves (docs/decisions/008-continuous-batching-engine.md).
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from typing import TYPE_CHECKING, Self, cast

import torch
from jinja2 import TemplateError
from transformers import DynamicCache

from runner.engines.protocol import GENERATION_ERRORS, GenerationRequest, GenerationResult
from runner.engines.transformers.admission import Row, admit
from runner.engines.transformers.llama_decode import LlamaDecodeStep
from runner.engines.transformers.prompt import build_prompt_ids
from runner.engines.transformers.rolling_batch import RollingBatch
from runner.engines.transformers.sampling import RowSampler, choose_tokens
from runner.engines.transformers.shared_prefix import SharedPrefix, read_shared_prefix
from runner.errors import ModelLoadError, PromptTooLongError, one_line
from runner.reasoning import OPEN_TAG, prompt_opens_thinking
from runner.weights.fusing import MergedProjections
from runner.weights.half_weights import Float16WeightLinear
from runner.weights.loading import context_tokens, eos_token_ids, load_model
from runner.weights.packing import PackedLinear
from shared.config.settings import Settings

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from runner.weights.source import ModelFiles

log = logging.getLogger(__name__)

PROMPT_ERRORS = (PromptTooLongError, TemplateError)
"""What building one request's prompt raises for that request alone."""
PROMPT_END_TOKENS = 16
"""Tokens at the end of a prompt read for a `<think>` the chat template left open."""


class TransformersEngine:
    """A loaded model and tokenizer, with the batch being generated; stepped by a single thread."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        system_prompt: str,
        context_tokens: int,
        max_rows: int = 1,
        token_budget: int = 0,
    ) -> None:
        if not tokenizer.chat_template:
            raise ModelLoadError(f"MODEL {name} has no chat template (a base model rather than an instruct/chat one?)")
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model
        self.tokenizer = tokenizer
        self.sees_images = False
        """A text model: runner/engines/transformers/vision.py is the engine of models that see."""
        self.max_image_side = 0
        self.system_prompt = system_prompt
        self.context_tokens = context_tokens
        self.max_rows = max_rows
        self.token_budget = token_budget or max_rows * context_tokens
        """Cache positions (rows x padded length) the batch may fill; a job joins only if it keeps within it."""
        self.eos_token_ids = eos_token_ids(model, tokenizer)
        self.batch = RollingBatch()
        self.prefix: SharedPrefix | None = None
        self.running: list[Row] = []
        self.waiting: deque[Row] = deque()
        self.done: list[GenerationResult] = []
        device = model.device
        cpu = f" threads={torch.get_num_threads()}" if device.type == "cpu" else ""
        kinds = {type(module) for module in model.modules()}
        if PackedLinear in kinds:
            cpu += " linear=onednn-packed"
        if Float16WeightLinear in kinds:
            cpu += " linear=float16-weights"
        if MergedProjections in kinds:
            cpu += " projections=merged"
        self.decode_step = LlamaDecodeStep.build(model)
        if self.decode_step is not None:
            cpu += " decode=plain-calls"
        dtype = str(model.dtype).removeprefix("torch.")
        self.description = f"model={name} device={device} dtype={dtype} context={context_tokens}{cpu}"

    @classmethod
    def load(cls, files: ModelFiles, settings: Settings) -> Self:
        """Loads from local files only (Hub models were fetched before); raises ModelLoadError."""
        model, tokenizer, dtype = load_model(files, settings)
        engine = cls(
            model,
            tokenizer,
            name=files.name,
            system_prompt=settings.system_prompt,
            context_tokens=context_tokens(model, settings.max_context_tokens),
            max_rows=settings.batch_size,
            token_budget=settings.batch_token_budget,
        )
        engine.description += f" dtype_reason=[{dtype.reason}]"
        engine.check_room(settings.max_new_tokens)
        engine.read_shared_prefix()
        return engine

    def read_shared_prefix(self) -> None:
        """Reads the prompt start all jobs share once, so that each job's prompt is read from where it differs."""
        try:
            self.prefix = read_shared_prefix(
                self.tokenizer, self.system_prompt, self.context_tokens, self.model.device, self._logits
            )
        except (*GENERATION_ERRORS, *PROMPT_ERRORS) as exc:
            log.warning("could not read the shared prompt start (%s); reading whole prompts", one_line(exc))

    def check_room(self, max_new_tokens: int) -> None:
        """Raises ModelLoadError when MAX_NEW_TOKENS leaves no room for the system prompt and a short message."""
        try:
            self.prompt_ids(GenerationRequest("check", (), "Hello!", max_new_tokens, 0.0, 1.0, 1.0))
        except PROMPT_ERRORS as exc:
            raise ModelLoadError(
                f"MAX_NEW_TOKENS={max_new_tokens} and SYSTEM_PROMPT do not fit the model's context of "
                f"{self.context_tokens} tokens (MAX_CONTEXT_TOKENS) or BATCH_TOKEN_BUDGET={self.token_budget}: {exc}"
            ) from None

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The request's prompt, trimmed (oldest history first) to fit both the context and the batch budget."""
        limit = min(self.context_tokens, self.token_budget)
        budget = limit - request.max_new_tokens
        if budget <= 0:
            raise PromptTooLongError(f"max_new_tokens={request.max_new_tokens} leaves no room in {limit} tokens")
        system_prompt = self.system_prompt if request.system_prompt is None else request.system_prompt
        return build_prompt_ids(self.tokenizer, system_prompt, request.history, request.message, budget)

    @property
    def unfinished(self) -> int:
        return len(self.waiting) + len(self.running) + len(self.done)

    @property
    def accepting(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def add(self, requests: Sequence[GenerationRequest]) -> None:
        for request in requests:
            try:
                prompt = self.prompt_ids(request)
            except PROMPT_ERRORS as exc:
                self.done.append(GenerationResult.failed(request.job_id, f"prompt: {exc}"))
                continue
            try:
                sampler = RowSampler(request, self.eos_token_ids)
            except ValueError as exc:  # settings transformers refuses, such as a penalty of 0
                self.done.append(GenerationResult.failed(request.job_id, f"generation failed: {one_line(exc)}"))
                continue
            prompt_end = cast(str, self.tokenizer.decode(prompt[-PROMPT_END_TOKENS:]))
            opens_thinking = prompt_opens_thinking(prompt_end)
            self.waiting.append(Row(request, prompt, sampler, opens_thinking=opens_thinking))

    def partial_texts(self) -> dict[str, str]:
        return {row.request.job_id: self._row_text(row) for row in self.running if row.generated}

    def step(self) -> list[GenerationResult]:
        """Lets waiting jobs join and reads their prompts if any can; otherwise generates one token for each row."""
        joining = admit(self.waiting, self.running, self.max_rows, self.token_budget)
        if joining:
            self._prefill(joining)
        elif self.running:
            self._decode()
        finished, self.done = self.done, []
        return finished

    def _prefill(self, joining: list[Row]) -> None:
        """Reads the joining rows' prompts: those that start as every prompt does from where they differ."""
        prefix = self.prefix
        shared = [row for row in joining if prefix is not None and prefix.covers(row.prompt)]
        if shared:
            self._read_prompts(shared, prefix)
        if len(shared) < len(joining):
            self._read_prompts([row for row in joining if row not in shared], None)

    def _read_prompts(self, joining: list[Row], prefix: SharedPrefix | None) -> None:
        """Reads prompts in one forward; if that fails, each alone, so that only the culprit fails."""
        skip = len(prefix.ids) if prefix else 0
        own = [row.prompt[skip:] for row in joining]
        length = max(len(ids) for ids in own)
        pad = cast(int, self.tokenizer.pad_token_id)
        device = self.model.device
        input_ids = torch.tensor([[pad] * (length - len(ids)) + ids for ids in own], device=device)
        mask = [[1] * skip + [0] * (length - len(ids)) + [1] * len(ids) for ids in own]
        attention_mask = torch.tensor(mask, dtype=torch.long, device=device)
        positions = (attention_mask.cumsum(dim=1) - 1).clamp(min=0)[:, skip:]
        cache = prefix.cache(len(joining)) if prefix else DynamicCache()
        try:
            logits = self.forward([row.request for row in joining], input_ids, attention_mask, positions, cache)
            tokens = self._choose(joining, logits)
        except GENERATION_ERRORS as exc:
            if len(joining) == 1:
                self._fail(joining[0], exc)
                return
            log.warning("prompts of %d jobs failed together (%s); reading each alone", len(joining), one_line(exc))
            for row in joining:
                self._read_prompts([row], prefix)
            return
        self.running.extend(joining)
        self.batch.join(cache, attention_mask, torch.tensor([[t] for t in tokens], device=device), self._room())
        self._record(tokens, first=len(self.running) - len(joining))

    def _decode(self) -> None:
        """One new token for every running row; if the batch fails, its rows start again, each alone."""
        input_ids, attention_mask, positions = self.batch.step_inputs()
        try:
            logits = self.forward(
                [row.request for row in self.running], input_ids, attention_mask, positions, self.batch.cache
            )
            tokens = self._choose(self.running, logits)
        except GENERATION_ERRORS as exc:
            rows, self.running = self.running, []
            self.batch.clear()  # some layers may hold the failed step's keys already
            if len(rows) == 1:
                self._fail(rows[0], exc)
                return
            log.warning("batch of %d jobs failed (%s); generating each alone", len(rows), one_line(exc))
            for row in rows:
                row.generated.clear()
                row.solo = True
            self.waiting.extendleft(reversed(rows))
            return
        self.batch.next_ids = torch.tensor([[t] for t in tokens], device=self.model.device)
        self._record(tokens, first=0)

    def forward(
        self,
        rows: Sequence[GenerationRequest],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        """float32 logits [rows, vocab] of each row's last position, for the jobs `rows`.

        Every forward over jobs goes through here: tests override it to fail a batch that holds a given job.
        """
        return self._logits(input_ids, attention_mask, position_ids, cache)

    def _logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        with torch.inference_mode():
            if self.decode_step is not None and cache is not None and input_ids.shape[1] == 1:
                return self.decode_step.logits(input_ids, attention_mask, position_ids, cache).float()
            output = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
        return cast(torch.Tensor, output.logits[:, -1, :].float())

    @staticmethod
    def _choose(rows: Sequence[Row], logits: torch.Tensor) -> list[int]:
        """Padding is no token of a row: unlike generate() on a padded batch, the penalty never sees it, so a
        job's answer does not depend on the batch it was in."""
        prompts = [row.prompt for row in rows]
        return choose_tokens([row.sampler for row in rows], logits, prompts, [row.generated for row in rows])

    def _record(self, tokens: list[int], first: int) -> None:
        """Appends each row's new token (rows from `first` on); rows that stop are answered and leave the batch."""
        keep = list(range(first))
        for index, token in enumerate(tokens, start=first):
            row = self.running[index]
            row.generated.append(token)
            if row.sampler.finished(token, len(row.generated)):
                self.done.append(self._answer(row))
            else:
                keep.append(index)
        if len(keep) < len(self.running):
            self.running = [self.running[i] for i in keep]
            self.batch.keep(keep, self._room())

    def _room(self) -> int:
        """Steps until a row is sure to leave, when the cache is rebuilt: what it needs room for meanwhile."""
        return min((row.request.max_new_tokens - len(row.generated) for row in self.running), default=0)

    def _answer(self, row: Row) -> GenerationResult:
        """The answer text (up to the first end-of-sequence token) and the number of tokens generated."""
        return GenerationResult(row.request.job_id, self._row_text(row), None, len(row.prompt), len(row.generated))

    def _row_text(self, row: Row) -> str:
        """The row's text; one whose prompt opened a think block starts with that tag, so that the model's thinking
        before its `</think>` is told from its answer (runner/reasoning.py)."""
        return (OPEN_TAG if row.opens_thinking else "") + self._text(row.generated)

    def _text(self, new_ids: list[int]) -> str:
        """The text of generated tokens, up to the first end-of-sequence one."""
        end = next((i for i, token in enumerate(new_ids) if token in self.eos_token_ids), None)
        return cast(
            str, self.tokenizer.decode(new_ids if end is None else new_ids[:end], skip_special_tokens=True)
        ).strip()

    def _fail(self, row: Row, exc: BaseException) -> None:
        reason = f"generation failed: {one_line(exc)}"
        log.warning("job %s: %s", row.request.job_id, reason)
        self.done.append(GenerationResult.failed(row.request.job_id, reason, len(row.prompt)))
