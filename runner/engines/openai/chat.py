"""A job as an OpenAI chat completion request: the conversation as chat messages (the server applies its own chat
template) and the fields that ask for a minimum answer length, which servers spell differently."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from openai.types.chat import ChatCompletionContentPartParam, ChatCompletionMessageParam

from runner.engines.protocol import GenerationRequest


def chat_messages(request: GenerationRequest, system_prompt: str) -> list[ChatCompletionMessageParam]:
    """The job's system prompt (its own, else the runner's), its conversation, then the new message."""
    system = request.system_prompt if request.system_prompt is not None else system_prompt
    messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": system}] if system else []
    for turn in request.history:
        if turn["role"] == "assistant":
            messages.append({"role": "assistant", "content": turn["content"]})
        else:
            messages.append({"role": "user", "content": turn["content"]})
    messages.append({"role": "user", "content": user_content(request)})
    return messages


def user_content(request: GenerationRequest) -> str | list[ChatCompletionContentPartParam]:
    """The new message: its words, after its images as `image_url` parts with `data:` URLs (what vLLM, Ollama and
    llama.cpp's server take; none of them fetches Discord's URLs for us, and those expire)."""
    if not request.images:
        return request.message
    parts: list[ChatCompletionContentPartParam] = [
        {"type": "image_url", "image_url": {"url": image.data_url}} for image in request.images
    ]
    if request.message:
        parts.append({"type": "text", "text": request.message})
    return parts


def _vllm_min_tokens(request: GenerationRequest) -> dict[str, Any]:
    return {"min_tokens": request.min_new_tokens, "ignore_eos": True}


def _transformers_min_tokens(request: GenerationRequest) -> dict[str, Any]:
    # transformers serve refuses fields it does not know (422) but takes a whole GenerationConfig as JSON, which
    # replaces the model's: do_sample must then be given, since temperature alone does not turn sampling on.
    config = {
        "min_new_tokens": request.min_new_tokens,
        "max_new_tokens": request.max_new_tokens,
        "do_sample": request.temperature > 0,
    }
    return {"generation_config": json.dumps(config)}


MinTokensFields = Callable[[GenerationRequest], dict[str, Any]]

MIN_TOKENS_DIALECTS: tuple[tuple[str, MinTokensFields], ...] = (
    ("min_tokens and ignore_eos (vLLM, SGLang)", _vllm_min_tokens),
    ("generation_config (transformers serve)", _transformers_min_tokens),
)
"""How a request asks for at least `min_new_tokens` (benchmarks only, for answers of equal length): the first
that the server does not refuse is kept. Servers that ignore unknown fields (Ollama) give shorter answers."""


def extra_fields(request: GenerationRequest, dialect: int) -> dict[str, Any] | None:
    """Fields beyond the OpenAI API's own: only a benchmark's minimum answer length, else none."""
    if not request.min_new_tokens:
        return None
    return MIN_TOKENS_DIALECTS[dialect][1](request)
