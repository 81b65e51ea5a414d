"""Loading a transformers causal LM and its tokenizer: device, dtype and context window."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

from runner.errors import ModelLoadError, one_line
from runner.weights.cpu_features import CpuFeatures, read_cpu_features
from runner.weights.freed_memory import return_freed_memory
from runner.weights.fusing import merge_projections
from runner.weights.half_weights import float16_weights_available
from runner.weights.packing import pack_linear_layers
from shared.config.settings import FLOAT16_WEIGHTS, Settings

if TYPE_CHECKING:
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

    from runner.weights.source import ModelFiles

log = logging.getLogger(__name__)

DEFAULT_CONTEXT_CAP_TOKENS = 8192
"""Context window used when MAX_CONTEXT_TOKENS is unset and the model allows more: bounds memory and prompt time."""

FALLBACK_CONTEXT_TOKENS = 2048
"""Context window of a model whose config does not state one."""


@dataclass(frozen=True)
class DtypeChoice:
    dtype: torch.dtype
    reason: str
    """Why, for the start-up line: e.g. "auto: avx512_bf16" or "auto: no native bfloat16"."""
    float16_weights: bool = False
    """float32 arithmetic with the linear layers' weights held in float16 (a CPU; runner/weights/half_weights.py)."""


def load_model(files: ModelFiles, settings: Settings) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, DtypeChoice]:
    """Loads from local files only (Hub models were fetched before); raises ModelLoadError."""
    device = choose_device(settings.device)
    choice = choose_dtype(settings.dtype, device)
    dtype = choice.dtype
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
        if device == "cpu":
            merge_projections(model)  # before packing, so each merged layer is packed once
            pack_linear_layers(model, settings.batch_size, float16_weights=choice.float16_weights)
            return_freed_memory()
    except (OSError, ValueError, ImportError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"MODEL {files.name} could not be loaded: {one_line(exc)}") from None
    return model, tokenizer, choice


def choose_device(setting: str) -> str:
    """DEVICE=auto is the first CUDA GPU when torch sees one, else the CPU."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting.startswith("cuda") and not torch.cuda.is_available():
        raise ModelLoadError(f"DEVICE={setting} but torch sees no CUDA device (a CPU-only torch build?)")
    if setting == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("DEVICE=mps but torch sees no Apple GPU")
    return setting


def choose_dtype(setting: str, device: str, cpu: CpuFeatures | None = None) -> DtypeChoice:
    """DTYPE=auto: bfloat16 on GPUs that support it, float16 on other GPUs; on a CPU, bfloat16 where it computes
    bfloat16 natively (AVX-512 BF16 or AMX), elsewhere (every bfloat16 matmul emulated) float32 with float16 weights
    where fbgemm can multiply by them, else float32."""
    if setting == FLOAT16_WEIGHTS:
        if device != "cpu":
            raise ModelLoadError(f"DTYPE={FLOAT16_WEIGHTS} is for a CPU; on {device} use DTYPE=float16")
        return DtypeChoice(torch.float32, f"DTYPE={setting}", float16_weights=True)
    if setting != "auto":
        dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}[setting]
        return DtypeChoice(dtype, f"DTYPE={setting}")
    if device.startswith("cuda"):
        if torch.cuda.is_bf16_supported():
            return DtypeChoice(torch.bfloat16, "auto: a GPU with bfloat16")
        return DtypeChoice(torch.float16, "auto: a GPU without bfloat16")
    if device == "mps":
        return DtypeChoice(torch.float16, "auto: Apple GPU")
    return _cpu_dtype(cpu or read_cpu_features())


def _cpu_dtype(cpu: CpuFeatures) -> DtypeChoice:
    native = cpu.native_bf16
    if native is not None:
        return DtypeChoice(torch.bfloat16, f"auto: {cpu.summary()} has {native}")
    if cpu.float16_weights and float16_weights_available():
        return DtypeChoice(
            torch.float32, f"auto: {cpu.summary()} has no native bfloat16; float16 weights", float16_weights=True
        )
    return DtypeChoice(torch.float32, f"auto: {cpu.summary()} has no native bfloat16")


def context_tokens(model: PreTrainedModel, max_context_tokens: int) -> int:
    """MAX_CONTEXT_TOKENS when set (but never past the model's limit), else the model's, capped."""
    limit = getattr(model.config.get_text_config(), "max_position_embeddings", None) or FALLBACK_CONTEXT_TOKENS
    if max_context_tokens:
        if max_context_tokens > limit:
            log.warning("MAX_CONTEXT_TOKENS=%d is more than the model's %d; using %d", max_context_tokens, limit, limit)
        return min(max_context_tokens, limit)
    return min(limit, DEFAULT_CONTEXT_CAP_TOKENS)


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends an answer: the generation config's (often the end-of-turn token too) and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    ids = [*ids, tokenizer.eos_token_id]
    return sorted({int(i) for i in ids if i is not None})
