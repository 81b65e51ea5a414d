"""The built-in model converted into a model cache once per test session (its conversion takes ~30 s here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.weights.builtin import prepare_builtin_model
from shared.config.settings import Settings


@pytest.fixture(scope="session")
def builtin_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MODEL_CACHE_DIR holding the converted built-in model."""
    cache = tmp_path_factory.mktemp("model-cache")
    prepare_builtin_model(Settings(model="builtin", model_cache_dir=cache))
    return cache


ENGLISH_SYSTEM_PROMPT = "You are a helpful assistant chatting in a Discord server. Answer concisely and accurately."
"""With the default SYSTEM_PROMPT ("You are Llama, ...") the 135M model answers some questions in French."""


def builtin_settings(cache: Path, **overrides: object) -> Settings:
    """Settings for the built-in model on the CPU from `cache`, with the system prompt it answers English to."""
    values: dict[str, object] = {
        "model": "builtin",
        "device": "cpu",
        "system_prompt": ENGLISH_SYSTEM_PROMPT,
        "model_cache_dir": cache,
    }
    return Settings(**{**values, **overrides})  # type: ignore[arg-type]
