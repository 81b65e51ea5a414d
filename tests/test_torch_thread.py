"""The runner's rule for torch work: loading, packing, the diagnostic and generation all run on the generation
thread, so no other thread's OpenMP pool is left to compete with generation for the cores."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from redis.asyncio import Redis

import runner.__main__ as runner_main
from runner.weights import loading
from shared.config.secret import Secret
from shared.queues.job_queue import JobQueue
from shared.queues.schemas import Job
from shared.storage.keys import Keys
from tests.redis_fixtures import TEST_MODEL, enqueue_opted_in
from tests.redis_server import RedisServer
from tests.test_engine import tiny_settings


async def test_all_torch_work_runs_on_one_thread_that_serves_as_long_as_the_runner(
    redis_server: RedisServer,
    redis: Redis,
    *,
    keys: Keys,
    tiny_model_dir: Path,
    make_job: Callable[..., Job],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    forward_threads: list[threading.Thread] = []
    packing_threads: list[threading.Thread] = []
    hook = torch.nn.modules.module.register_module_forward_pre_hook(
        lambda _module, _args: forward_threads.append(threading.current_thread())
    )
    pack = loading.pack_linear_layers

    def recording_pack(*args: object, **kwargs: object) -> bool:
        packing_threads.append(threading.current_thread())
        return pack(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(loading, "pack_linear_layers", recording_pack)
    settings = tiny_settings(tiny_model_dir, redis_url=Secret(redis_server.url), model_name=TEST_MODEL, batch_size=4)
    queue = JobQueue(redis, keys, settings)
    stop = asyncio.Event()
    serving = asyncio.create_task(runner_main.main(settings, stop))
    try:
        await enqueue_opted_in(redis, keys, queue, [make_job(content="hello there")])
        deadline = time.monotonic() + 120
        while not await redis.llen(keys.response):
            assert not serving.done(), serving.exception()
            assert time.monotonic() < deadline, "the job was not answered"
            await asyncio.sleep(0.05)
        loaded_on = set(packing_threads)
        checked_and_generated_on = set(forward_threads)
        alive_doing_torch = {thread for thread in loaded_on | checked_and_generated_on if thread.is_alive()}
    finally:
        stop.set()
        await serving
        hook.remove()
    assert packing_threads, "the tiny model's linear layers are packed at load"
    assert loaded_on == checked_and_generated_on, "the model is loaded, checked and run on the same thread"
    [thread] = alive_doing_torch
    assert thread.name == "generation"
    assert thread is not threading.main_thread()
    assert not thread.is_alive(), "the thread ends with the runner"
