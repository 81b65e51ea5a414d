"""Generation with a transformers causal LM: device and dtype choice, and one left-padded batch per sampling setting."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

import torch
from jinja2 import TemplateError
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig, GgufConfig

from runner.engine import GENERATION_ERRORS, GenerationRequest, GenerationResult
from runner.errors import ModelLoadError, PromptTooLongError, one_line
from runner.prompt import build_prompt_ids
from shared.settings import Settings

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from runner.model_source import ModelFiles

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_CAP_TOKENS = 8192
"""Context window used when MAX_CONTEXT_TOKENS is unset and the model allows more: bounds memory and prompt time."""

FALLBACK_CONTEXT_TOKENS = 2048
"""Context window of a model whose config does not state one."""

CPU_DTYPE = torch.float32
"""What DTYPE=auto picks on a CPU; bfloat16 only wins at decoding one sequence, and loses at everything else.

Measured with the built-in model (SmolLM2-135M, sdpa, greedy, 2 threads) on this project's 2-core AMD EPYC
(Zen 3, AVX2: no native bf16, so every bf16 matmul converts to float32 and back), while other work shared the
machine, with `MODEL=builtin DEVICE=cpu python -m runner.diagnostic --batch 1 4 16 --new-tokens 64`:

                                        float32          bfloat16
    read a 588-token prompt (+1 token)  1.05-1.28 s      6.75-7.59 s
    1 sequence x 64 new tokens          10.6-14.3 tok/s  13.9-14.2 tok/s
    4 sequences x 64 new tokens         28.5 tok/s       20.1 tok/s
    16 sequences x 64 new tokens        94.7-111 tok/s   13.0-20.2 tok/s

Timing model.generate directly, decoding alone (prompt excluded) runs one sequence at ~16 tok/s in float32 and
~32 tok/s in bfloat16 (half the bytes to read per token), but 16 sequences at ~130 vs ~62 tok/s, and prompts are
read at ~250-460 vs ~45-70 tok/s: with a user's history in the prompt, float32 answers sooner even alone.
"""

PROMPT_ERRORS = (PromptTooLongError, TemplateError)


@dataclass(frozen=True)
class Sampling:
    """The settings a batch shares: requests that differ in any of them are generated separately."""

    max_new_tokens: int
    temperature: float
    top_p: float
    repetition_penalty: float

    @classmethod
    def of(cls, request: GenerationRequest) -> Sampling:
        return cls(request.max_new_tokens, request.temperature, request.top_p, request.repetition_penalty)


class TransformersEngine:
    """A loaded model and tokenizer; generate() is blocking and meant to run in a worker thread."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        name: str,
        system_prompt: str,
        context_tokens: int,
    ) -> None:
        if not tokenizer.chat_template:
            raise ModelLoadError(f"MODEL {name} has no chat template (a base model rather than an instruct/chat one?)")
        tokenizer.padding_side = "left"
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        self.model = model
        self.tokenizer = tokenizer
        self.system_prompt = system_prompt
        self.context_tokens = context_tokens
        self.eos_token_ids = _eos_token_ids(model, tokenizer)
        device = model.device
        threads = f" threads={torch.get_num_threads()}" if device.type == "cpu" else ""
        dtype = str(model.dtype).removeprefix("torch.")
        self.description = f"model={name} device={device} dtype={dtype} context={context_tokens}{threads}"

    @classmethod
    def load(cls, files: ModelFiles, settings: Settings) -> TransformersEngine:
        """Loads from local files only (Hub models were fetched before); raises ModelLoadError."""
        device = choose_device(settings.device)
        dtype = choose_dtype(settings.dtype, device)
        extra: dict[str, object] = {}
        if files.gguf_file:
            # The packed-weights path needs the `kernels` package and cannot be saved or moved freely.
            extra = {"gguf_file": files.gguf_file, "quantization_config": GgufConfig(dequantize=True)}
        try:
            tokenizer = AutoTokenizer.from_pretrained(files.directory, gguf_file=files.gguf_file, local_files_only=True)
            model = AutoModelForCausalLM.from_pretrained(
                files.directory, dtype=dtype, attn_implementation="sdpa", local_files_only=True, **extra
            )
            # PreTrainedModel.to is wrapped with functools.wraps(nn.Module.to), which mypy reads as unbound.
            model.to(device).eval()  # type: ignore[arg-type]
        except (OSError, ValueError, ImportError, RuntimeError, KeyError) as exc:
            raise ModelLoadError(f"MODEL {files.name} could not be loaded: {one_line(exc)}") from None
        engine = cls(
            model,
            tokenizer,
            name=files.name,
            system_prompt=settings.system_prompt,
            context_tokens=context_tokens(model, settings.max_context_tokens),
        )
        engine.check_room(settings.max_new_tokens)
        return engine

    def check_room(self, max_new_tokens: int) -> None:
        """Raises ModelLoadError when MAX_NEW_TOKENS leaves no room for the system prompt and a short message."""
        try:
            self.prompt_ids(GenerationRequest("check", (), "Hello!", max_new_tokens, 0.0, 1.0, 1.0))
        except PROMPT_ERRORS as exc:
            raise ModelLoadError(
                f"MAX_NEW_TOKENS={max_new_tokens} and SYSTEM_PROMPT do not fit the model's context of "
                f"{self.context_tokens} tokens (MAX_CONTEXT_TOKENS): {exc}"
            ) from None

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        budget = self.context_tokens - request.max_new_tokens
        if budget <= 0:
            raise PromptTooLongError(
                f"max_new_tokens={request.max_new_tokens} leaves no room in the context of {self.context_tokens}"
            )
        return build_prompt_ids(self.tokenizer, self.system_prompt, request.history, request.message, budget)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        results: dict[int, GenerationResult] = {}
        groups: dict[Sampling, list[tuple[int, list[int]]]] = {}
        for index, request in enumerate(requests):
            try:
                prompt = self.prompt_ids(request)
            except PROMPT_ERRORS as exc:
                results[index] = GenerationResult.failed(request.job_id, f"prompt: {exc}")
                continue
            groups.setdefault(Sampling.of(request), []).append((index, prompt))
        for sampling, members in groups.items():
            answers = self._generate_group([requests[i] for i, _ in members], [p for _, p in members], sampling)
            results.update(zip((i for i, _ in members), answers, strict=True))
        return [results[i] for i in range(len(requests))]

    def _generate_group(
        self, requests: list[GenerationRequest], prompts: list[list[int]], sampling: Sampling
    ) -> list[GenerationResult]:
        """One batch; if it fails, each request alone, so that only the failing ones get an error."""
        try:
            answers = self.generate_batch(prompts, sampling)
        except GENERATION_ERRORS as exc:
            if len(prompts) > 1:
                log.warning("batch of %d failed (%s); generating each job alone", len(prompts), one_line(exc))
                return [self._generate_group([r], [p], sampling)[0] for r, p in zip(requests, prompts, strict=True)]
            reason = f"generation failed: {one_line(exc)}"
            log.warning("job %s: %s", requests[0].job_id, reason)
            return [GenerationResult.failed(requests[0].job_id, reason, len(prompts[0]))]
        return [
            GenerationResult(request.job_id, text, None, len(prompt), new_tokens)
            for request, prompt, (text, new_tokens) in zip(requests, prompts, answers, strict=True)
        ]

    def generate_batch(self, prompts: list[list[int]], sampling: Sampling) -> list[tuple[str, int]]:
        """Generates left-padded `prompts` together; returns (answer text, new tokens) for each."""
        batch = self.tokenizer.pad({"input_ids": prompts}, padding=True, return_tensors="pt").to(self.model.device)
        with torch.inference_mode():
            # transformers annotates generate's `self` with a private protocol that PreTrainedModel is not declared as.
            output = self.model.generate(  # type: ignore[operator]
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                generation_config=self.generation_config(sampling),
            )
        return [self._decode(row.tolist()) for row in output[:, batch["input_ids"].shape[1] :]]

    def generation_config(self, sampling: Sampling) -> GenerationConfig:
        # Built from scratch so that a model's own sampling defaults never mix with the job's settings.
        sample = sampling.temperature > 0
        return GenerationConfig(  # type: ignore[no-untyped-call]
            max_new_tokens=sampling.max_new_tokens,
            do_sample=sample,
            temperature=sampling.temperature if sample else None,
            top_p=sampling.top_p if sample else None,
            repetition_penalty=sampling.repetition_penalty,
            eos_token_id=self.eos_token_ids,
            pad_token_id=self.tokenizer.pad_token_id,
        )

    def _decode(self, new_ids: list[int]) -> tuple[str, int]:
        """The answer text (up to the first end-of-sequence token) and the number of tokens generated."""
        end = next((i for i, token in enumerate(new_ids) if token in self.eos_token_ids), None)
        answer_ids = new_ids if end is None else new_ids[:end]
        text = cast(str, self.tokenizer.decode(answer_ids, skip_special_tokens=True)).strip()
        return text, len(new_ids) if end is None else end + 1


def choose_device(setting: str) -> str:
    """DEVICE=auto is the first CUDA GPU when torch sees one, else the CPU."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"DEVICE={setting} but torch sees no CUDA device (a CPU-only torch build?)")
    if setting == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("DEVICE=mps but torch sees no Apple GPU")
    return setting


def choose_dtype(setting: str, device: str) -> torch.dtype:
    """DTYPE=auto is bfloat16 on GPUs that support it, float16 on other GPUs, and CPU_DTYPE on CPUs."""
    if setting != "auto":
        return {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[setting]
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return CPU_DTYPE


def context_tokens(model: PreTrainedModel, max_context_tokens: int) -> int:
    """MAX_CONTEXT_TOKENS when set (but never past the model's limit), else the model's, capped."""
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None) or FALLBACK_CONTEXT_TOKENS
    if max_context_tokens:
        if max_context_tokens > limit:
            log.warning("MAX_CONTEXT_TOKENS=%d is more than the model's %d; using %d", max_context_tokens, limit, limit)
        return min(max_context_tokens, limit)
    return min(limit, DEFAULT_CONTEXT_CAP_TOKENS)


def _eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends an answer: the generation config's (often the end-of-turn token too) and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    ids = [*ids, tokenizer.eos_token_id]
    return sorted({int(i) for i in ids if i is not None})
