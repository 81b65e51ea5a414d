"""`python -m runner`: load the model, prove it works, then answer jobs from Redis until stopped.

`python -m runner --prepare-builtin` only converts the built-in model into MODEL_CACHE_DIR (for images).
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time

from runner.diagnostic import run_diagnostic
from runner.engines.choice import load_engine, served_model_name
from runner.engines.protocol import Engine
from runner.errors import DiagnosticError, ModelLoadError
from runner.generation_thread import GenerationThread
from runner.weights.builtin import prepare_builtin_model
from runner.worker import Runner
from shared.config.settings import Settings
from shared.errors import FatalStartupError, SettingsError
from shared.runtime.observability.checks import redis_reachable, task_running
from shared.runtime.observability.metrics import registry_for
from shared.runtime.observability.server import Health, serving
from shared.runtime.process import run_process
from shared.storage.client import create_redis, wait_for_redis
from shared.storage.heartbeat import new_worker_id

log = logging.getLogger("runner")


def load_and_check(settings: Settings) -> Engine:
    """Loads the model and runs one short generation; any failure stops the runner with one clear line."""
    started = time.perf_counter()
    try:
        served_model_name(settings)  # a MODEL that no name can be made from stops the runner before a slow load
        engine = load_engine(settings)
    except ModelLoadError as exc:
        raise FatalStartupError(str(exc)) from None
    try:
        report = run_diagnostic(engine, load_s=time.perf_counter() - started)
    except DiagnosticError as exc:
        engine.close()
        raise FatalStartupError(str(exc)) from None
    log.info(
        "diagnostic passed: %s load_s=%.1f new_tokens=%d tokens_per_s=%.1f",
        report.description,
        report.load_s,
        report.new_tokens,
        report.tokens_per_s,
    )
    return engine


class RunnerHealth:
    """What /healthz asks of a runner, in order: its engine loaded and checked, Redis reachable, its loop serving
    and its heartbeat fresh (a runner whose heartbeat lapsed is taken for dead by its peers)."""

    def __init__(self) -> None:
        self.engine_ready = False
        self.runner: Runner | None = None
        self.serving: asyncio.Task[None] | None = None

    async def engine(self) -> str | None:
        return None if self.engine_ready else "the model is loading (or its start-up diagnostic runs)"

    async def worker(self) -> str | None:
        if self.runner is None:
            return "not taking jobs yet"
        return task_running(self.serving, "the job loop") or self.runner.heartbeat.staleness()


async def main(settings: Settings, stop: asyncio.Event) -> None:
    health, state = Health(), RunnerHealth()
    health.add("engine", state.engine)
    async with serving(registry_for("runner"), health, settings.metrics_port):
        await serve(settings, stop, health, state)


async def serve(settings: Settings, stop: asyncio.Event, health: Health, state: RunnerHealth) -> None:
    # The rule for torch work: all of it (load, packing, diagnostic, generation) on the generation thread, which
    # lives as long as the engine; see runner/generation_thread.py for why.
    generation = GenerationThread()
    try:
        engine = await generation.call(lambda: load_and_check(settings))
    except BaseException:
        await generation.stop()  # not loaded (it failed, or the runner was stopped meanwhile)
        raise
    state.engine_ready = True
    redis = create_redis(settings)
    health.add("Redis", redis_reachable(redis))
    health.add("worker", state.worker)
    try:
        if not await wait_for_redis(redis, settings, stop):
            return
        runner = Runner(settings, engine, redis, new_worker_id(settings.worker_id), generation)
        log.info(
            "runner %s taking jobs for model %s (batch size %d)", runner.worker_id, runner.model, settings.batch_size
        )
        state.runner, state.serving = runner, asyncio.create_task(runner.run(stop))
        await state.serving
    finally:
        await redis.aclose()
        await generation.stop()  # already stopped by the runner, unless Redis never came
        await asyncio.to_thread(engine.close)


def prepare_builtin() -> int:
    try:
        path = prepare_builtin_model(Settings.from_env())
    except (SettingsError, ModelLoadError) as exc:
        print(f"runner: error: {exc}", file=sys.stderr)
        return 1
    print(f"built-in model ready in {path}")
    return 0


if __name__ == "__main__":
    sys.exit(prepare_builtin() if "--prepare-builtin" in sys.argv[1:] else run_process("runner", main))
