"""Which engine MODEL names: the echo engine, an OpenAI-compatible server, or a transformers model loaded from
wherever it lives."""

from __future__ import annotations

from runner.engines.echo import EchoEngine
from runner.engines.protocol import Engine
from runner.errors import ModelLoadError
from runner.weights.source import parse_echo_model, resolve_model
from shared.settings import OPENAI_MODEL_PREFIX, Settings


def load_engine(settings: Settings) -> Engine:
    """The engine for settings.model; raises ModelLoadError with a one-line reason."""
    echo_delay_s = parse_echo_model(settings.model)
    if echo_delay_s is not None:
        return EchoEngine(delay_s=echo_delay_s)
    served_model = parse_openai_model(settings.model)
    if served_model is not None:
        return connect_openai_engine(served_model, settings)
    # Imported here so that MODEL=echo (deployment tests, the queue benchmark) never loads torch.
    from runner.engines.transformers.engine import TransformersEngine

    return TransformersEngine.load(resolve_model(settings), settings)


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
    )
