"""Which engine MODEL names: the echo engine, or a transformers model loaded from wherever it lives."""

from __future__ import annotations

from runner.engines.echo import EchoEngine
from runner.engines.protocol import Engine
from runner.weights.source import parse_echo_model, resolve_model
from shared.settings import Settings


def load_engine(settings: Settings) -> Engine:
    """The engine for settings.model; raises ModelLoadError with a one-line reason."""
    echo_delay_s = parse_echo_model(settings.model)
    if echo_delay_s is not None:
        return EchoEngine(delay_s=echo_delay_s)
    # Imported here so that MODEL=echo (deployment tests, the queue benchmark) never loads torch.
    from runner.engines.transformers.engine import TransformersEngine

    return TransformersEngine.load(resolve_model(settings), settings)
