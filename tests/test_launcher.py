"""`llama-discord-bot run` as a newcomer runs it: a fresh virtual environment, no redis-server on PATH, MODEL=echo.

The launcher starts its embedded Redis, the updater, a runner and the bot; an answer goes through the fake Discord;
one SIGINT stops them in reverse order and leaves no process behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import pytest
from redis.asyncio import Redis

from tests.e2e_support import wait_reply
from tests.fake_discord import FakeDiscord
from tests.redis_server import RedisServer, free_port
from tests.system import PROJECT_ROOT

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtual environment with this checkout installed in it (its console script included).

    It sees the suite's own packages (--system-site-packages), so that making it takes seconds, not a download.
    """
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", root], check=True)
    python = root / "bin" / "python"
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", PROJECT_ROOT]
    subprocess.run(install, check=True, capture_output=True)
    assert (root / "bin" / "llama-discord-bot").is_file()
    return root


def launcher_env(venv: Path, home: Path, **settings: str) -> dict[str, str]:
    """Nothing inherited: PATH is the environment's bin/ alone (no redis-server), no REDIS_URL, no PYTHONPATH."""
    env = {"PATH": str(venv / "bin"), "HOME": str(home), "LANG": "C.UTF-8", **settings}
    assert shutil.which("redis-server", path=env["PATH"]) is None
    return env


@dataclass
class Launcher:
    """`llama-discord-bot run` in a working directory, its combined log collected line by line."""

    process: asyncio.subprocess.Process
    lines: list[str] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, venv: Path, workdir: Path, env: dict[str, str]) -> Launcher:
        process = await asyncio.create_subprocess_exec(
            venv / "bin" / "llama-discord-bot",
            "run",
            cwd=workdir,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        launcher = cls(process)
        launcher.reader = asyncio.create_task(launcher._read())
        return launcher

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            self.lines.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(self, name: str, text: str, timeout: float = 30.0) -> int:
        """The index of the first line of `name` (e.g. `runner`) containing `text`."""
        deadline = time.monotonic() + timeout
        while True:
            for index, line in enumerate(self.lines):
                if line.startswith(f"{name:<8} | ") and text in line:
                    return index
            if self.process.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {name} line with {text!r} (exit code {self.process.returncode}):\n{self.log}")
            await asyncio.sleep(0.05)

    async def finish(self, timeout: float = 60.0) -> int:
        code = await asyncio.wait_for(self.process.wait(), timeout)
        assert self.reader is not None
        await asyncio.wait_for(self.reader, 10)
        return code


def still_running(pids: list[int]) -> list[psutil.Process]:
    found = []
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            process = psutil.Process(pid)
            if process.status() != psutil.STATUS_ZOMBIE:
                found.append(process)
    return found


async def test_run_starts_everything_answers_and_one_sigint_stops_all(
    venv: Path, fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    workdir, cache = tmp_path / "work", tmp_path / "cache"
    workdir.mkdir()
    (workdir / ".env").write_text(f"DISCORD_TOKEN={fake_discord.token}\n")  # read as the processes read it
    env = launcher_env(
        venv,
        tmp_path,
        MODEL="echo",
        MODEL_CACHE_DIR=str(cache),
        LOCAL_REDIS_PORT=str(free_port()),  # 6379 may be taken on a developer's machine
        DISCORD_API_BASE=fake_discord.api_base,
        DISCORD_GATEWAY_URL=fake_discord.gateway_url,
        STREAM_INTERVAL_S="0",
    )
    launcher = await Launcher.start(venv, workdir, env)
    try:
        await launcher.wait_for("launcher", "starting Redis at redis://127.0.0.1:")
        await launcher.wait_for("redis", "Ready to accept connections")
        await launcher.wait_for("runner", "taking jobs")
        await launcher.wait_for("updater", "posting as")
        await fake_discord.wait_identified(timeout=30)
        started = psutil.Process(launcher.process.pid).children(recursive=True)
        assert len(started) == 4, started

        alice = fake_discord.add_user("alice")
        optin = await fake_discord.send_message(alice, "!optin")
        assert "opted in" in (await wait_reply(fake_discord, optin["id"], timeout=20))["content"]
        question = await fake_discord.send_message(alice, "Hey Llama, what are the train lines in Boston?")
        reply = await wait_reply(fake_discord, question["id"], timeout=20)
        assert "what are the train lines in Boston?" in reply["content"]

        launcher.process.send_signal(signal.SIGINT)
        assert await launcher.finish() == 0, launcher.log
    finally:
        if launcher.process.returncode is None:
            launcher.process.kill()
            await launcher.process.wait()
        print(launcher.log)  # shown when the test fails
    log = launcher.log
    assert still_running([p.pid for p in started]) == [], log
    exits = [await launcher.wait_for("launcher", f"{name} exited with code 0") for name in ("bot", "runner", "updater")]
    assert exits == sorted(exits), f"not stopped bot, runner, updater in that order:\n{log}"
    assert exits[-1] < await launcher.wait_for("redis", "is now ready to exit"), log  # Redis last
    await launcher.wait_for("bot", "stopped: accepted 1 messages")
    await launcher.wait_for("runner", "stopped: answered=1")
    await launcher.wait_for("updater", "stopped: posted=1 messages")
    assert "Traceback" not in log and fake_discord.token not in log, log
    assert (cache / "redis" / "appendonlydir").is_dir()  # AOF on, under MODEL_CACHE_DIR


MISSING_TOKEN = "DISCORD_TOKEN is not set; put it in the environment or in .env"


async def test_a_missing_token_is_the_processes_one_line_and_starts_nothing(venv: Path, tmp_path: Path) -> None:
    env = launcher_env(venv, tmp_path, MODEL="echo", LOCAL_REDIS_PORT=str(free_port()))
    launcher = await Launcher.start(venv, tmp_path, env)
    assert await launcher.finish(timeout=30) == 2
    assert launcher.lines == [f"llama-discord-bot: error: {MISSING_TOKEN}"]


def test_one_process_alone_is_that_process(venv: Path, tmp_path: Path) -> None:
    env = launcher_env(venv, tmp_path)
    alone = subprocess.run([venv / "bin" / "llama-discord-bot", "bot"], cwd=tmp_path, env=env, capture_output=True)
    assert (alone.returncode, alone.stdout, alone.stderr.decode()) == (2, b"", f"bot: error: {MISSING_TOKEN}\n")


async def test_a_redis_already_there_is_used_and_a_process_that_exits_stops_the_others(
    venv: Path, fake_discord: FakeDiscord, redis_server: RedisServer, tmp_path: Path
) -> None:
    # A runner that cannot start (an openai: model without its server) exits at once with one line.
    env = launcher_env(
        venv,
        tmp_path,
        DISCORD_TOKEN=fake_discord.token,
        MODEL="openai:some-model",
        LOCAL_REDIS_PORT=str(redis_server.port),
        MODEL_CACHE_DIR=str(tmp_path / "cache"),
        DISCORD_API_BASE=fake_discord.api_base,
        DISCORD_GATEWAY_URL=fake_discord.gateway_url,
    )
    launcher = await Launcher.start(venv, tmp_path, env)
    try:
        assert await launcher.finish() == 1, launcher.log
    finally:
        if launcher.process.returncode is None:
            launcher.process.kill()
            await launcher.process.wait()
        print(launcher.log)  # shown when the test fails
    log = launcher.log
    await launcher.wait_for("launcher", f"using the Redis already listening at redis://127.0.0.1:{redis_server.port}/0")
    await launcher.wait_for("launcher", "runner exited with code 1 by itself: stopping the others")
    assert not re.search(r"^redis +\|", log, flags=re.MULTILINE), log  # none of its own
    started = [int(pid) for pid in re.findall(r"launcher: started \w+ \(pid (\d+)\)", log)]
    assert len(started) == 3 and still_running(started) == [], log
    assert not (tmp_path / "cache" / "redis").exists()
    redis = Redis.from_url(redis_server.url)
    try:
        assert await redis.ping()  # left running
    finally:
        await redis.aclose()
