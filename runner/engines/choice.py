"""Which engine MODEL names: the echo engine, an OpenAI-compatible server, or a transformers model loaded from
wherever it lives; and the name the runner serves it under."""

from __future__ import annotations

from pathlib import PurePath

from runner.engines.echo import EchoEngine
from runner.engines.protocol import Engine
from runner.errors import ModelLoadError
from runner.weights.source import parse_echo_model, resolve_model
from shared.config.settings import BUILTIN_MODEL, ECHO_MODEL, OPENAI_MODEL_PREFIX, Settings
from shared.queues.model_names import name_from

BUILTIN_MODEL_NAME = "smollm2-135m"
"""The name the built-in model (MODEL=builtin) is served under unless MODEL_NAME says otherwise."""


def load_engine(settings: Settings) -> Engine:
    """The engine for settings.model; raises ModelLoadError with a one-line reason."""
    echo_delay_s = parse_echo_model(settings.model)
    if echo_delay_s is not None:
        return EchoEngine(delay_s=echo_delay_s)
    served_model = parse_openai_model(settings.model)
    if served_model is not None:
        return connect_openai_engine(served_model, settings)
    # Imported here so that MODEL=echo (deployment tests, the queue benchmark) never loads torch.
    from runner.engines.transformers.vision import load_transformers_engine

    return load_transformers_engine(resolve_model(settings), settings)


def parse_openai_model(model: str) -> str | None:
    """The model id of MODEL=openai:<model id> (which may hold colons, as Ollama's do); None for other models."""
    model = model.strip()
    if not model.lower().startswith(OPENAI_MODEL_PREFIX):
        return None
    served = model[len(OPENAI_MODEL_PREFIX) :].strip()
    if not served:
        raise ModelLoadError("MODEL=openai: needs the id the server knows the model by, e.g. openai:llama3.2")
    return served


def connect_openai_engine(served_model: str, settings: Settings) -> Engine:
    """The engine for a model served at OPENAI_BASE_URL; nothing is sent until the diagnostic's request."""
    if not settings.openai_base_url:
        raise ModelLoadError(
            f"MODEL=openai:{served_model} needs OPENAI_BASE_URL, the server's /v1 URL (e.g. http://vllm:8000/v1)"
        )
    try:
        # Imported here so that only such runners need the openai package.
        from runner.engines.openai.engine import OpenAIEngine
    except ImportError as exc:
        raise ModelLoadError(
            f"MODEL=openai:... needs the openai package ({exc.name} is missing): pip install '.[runner-remote]'"
        ) from None
    return OpenAIEngine(
        served_model,
        base_url=settings.openai_base_url,
        api_key=settings.openai_api_key,
        system_prompt=settings.system_prompt,
        max_in_flight=settings.batch_size,
        sees_images=bool(settings.model_sees_images),
    )


def served_model_name(settings: Settings) -> str:
    """MODEL_NAME, else a name made from MODEL: the built-in model's, echo, the model id of an openai:<id> model,
    the last part of a Hub id or a folder, a .gguf file's name without the suffix."""
    if settings.model_name:
        return settings.model_name
    model = settings.model.strip()
    if model.lower() == BUILTIN_MODEL:
        return BUILTIN_MODEL_NAME
    if model.lower().partition(":")[0] == ECHO_MODEL:
        return ECHO_MODEL
    if model.lower().startswith(OPENAI_MODEL_PREFIX):
        source = model[len(OPENAI_MODEL_PREFIX) :]
    else:
        path = PurePath(model.rstrip("/\\"))
        source = path.stem if path.suffix.lower() == ".gguf" else path.name
    name = name_from(source)
    if not name:
        raise ModelLoadError(f"no model name can be made from MODEL {model!r}: set MODEL_NAME")
    return name
