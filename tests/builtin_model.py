"""The built-in model converted into a model cache once per test session (its conversion takes ~30 s here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from runner.weights.builtin import prepare_builtin_model
from shared.settings import Settings


@pytest.fixture(scope="session")
def builtin_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A MODEL_CACHE_DIR holding the converted built-in model."""
    cache = tmp_path_factory.mktemp("model-cache")
    prepare_builtin_model(Settings(model="builtin", model_cache_dir=cache))
    return cache
