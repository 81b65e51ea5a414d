"""Loading a transformers causal LM and its tokenizer: device, dtype and context window."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

from runner.errors import ModelLoadError, one_line
from runner.packed_weights import pack_linear_layers
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


def load_model(files: ModelFiles, settings: Settings) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
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
        if device == "cpu":
            pack_linear_layers(model, settings.batch_size)
    except (OSError, ValueError, ImportError, RuntimeError, KeyError) as exc:
        raise ModelLoadError(f"MODEL {files.name} could not be loaded: {one_line(exc)}") from None
    return model, tokenizer


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


def eos_token_ids(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Every id that ends an answer: the generation config's (often the end-of-turn token too) and the tokenizer's."""
    configured = model.generation_config.eos_token_id
    ids = configured if isinstance(configured, list) else [configured]
    ids = [*ids, tokenizer.eos_token_id]
    return sorted({int(i) for i in ids if i is not None})
