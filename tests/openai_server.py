"""A real OpenAI-compatible server for the tests: `transformers serve` on the tiny model, offline, on a free port.

`start_transformers_serve(...)` is a plain function for benchmarks and other fixtures; `openai_server` is the
session-scoped pytest fixture (registered through tests/conftest.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from tests.redis_server import free_port

START_TIMEOUT_S = 120.0


@dataclass
class ServedModel:
    """A running `transformers serve`; requests name `model`, the folder it was started with."""

    base_url: str
    model: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_transformers_serve(
    model_dir: Path, work_dir: Path, *, continuous_batching: bool = False, threads: int = 1
) -> ServedModel:
    """Starts `transformers serve` pinned to `model_dir` and returns once it answers /health."""
    port = free_port()
    # An existing, empty hub cache: without one its /v1/models answers 500 while scanning for models.
    hub_cache = work_dir / "hf-hub-cache"
    hub_cache.mkdir(parents=True, exist_ok=True)
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "HF_HUB_OFFLINE": "1",
        "HF_HUB_CACHE": str(hub_cache),
        "OMP_NUM_THREADS": str(threads),
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }
    args = [sys.executable, "-m", "transformers.cli.transformers", "serve", str(model_dir)]
    args += ["--host", "127.0.0.1", "--port", str(port), "--device", "cpu", "--log-level", "info"]
    if continuous_batching:
        args.append("--continuous-batching")
    log_path = work_dir / f"transformers-serve-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    served = ServedModel(f"http://127.0.0.1:{port}/v1", str(model_dir), process, log_path)
    deadline = time.monotonic() + START_TIMEOUT_S
    while not _healthy(port):
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise RuntimeError(f"transformers serve did not start:\n{served.log()[-4000:]}")
        time.sleep(0.2)
    return served


def streamed_answer(
    server: ServedModel, messages: list[dict[str, str]], max_tokens: int, temperature: float, top_p: float
) -> tuple[str, int]:
    """What the server streams to a plain client for `messages`, and its token count: what an engine should get."""
    client = openai.OpenAI(base_url=server.base_url, api_key="EMPTY", max_retries=0)
    text, tokens = "", 0
    try:
        stream = client.chat.completions.create(
            model=server.model,
            messages=messages,  # type: ignore[arg-type]
            max_tokens=max_tokens,
            temperature=temperature,
            top_p=top_p,
            stream=True,
        )
        for chunk in stream:
            text += "".join(choice.delta.content or "" for choice in chunk.choices)
            tokens = chunk.usage.completion_tokens if chunk.usage else tokens
    finally:
        client.close()
    return text, tokens


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def sampling_copy(model_dir: Path, destination: Path) -> Path:
    """The model with a generation_config.json that samples, as chat models ship (Llama 3's, Qwen's):
    transformers serve turns sampling on only from there, and a request's temperature 0 turns it off."""
    shutil.copytree(model_dir, destination)
    config_path = destination / "generation_config.json"
    config = json.loads(config_path.read_text())
    config.update(do_sample=True, temperature=1.0, top_p=1.0)
    config_path.write_text(json.dumps(config))
    return destination


@pytest.fixture(scope="session")
def openai_server(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    """`transformers serve` on the tiny model, one request at a time (each with its own sampling settings)."""
    work_dir = tmp_path_factory.mktemp("openai-server")
    served = start_transformers_serve(sampling_copy(tiny_model_dir, work_dir / "tiny-chat-model"), work_dir)
    yield served
    served.stop()
