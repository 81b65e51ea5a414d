"""A process that cannot start says why in one line and exits non-zero: no traceback, no secret.

One that cannot reach Discord says so in one line per attempt and retries until Discord answers or it is stopped.
"""

from __future__ import annotations

import asyncio
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.fake_discord import FakeDiscord
from tests.fake_discord.rest import API_PREFIX
from tests.redis_server import RedisServer, free_port
from tests.system import PROJECT_ROOT

BAD_TOKEN = "not-the-token-0123456789abcdef"

LOG_LINE = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ [\w.]+: ")
"""How every line a process writes starts: a traceback or any other multi-line output has lines that do not."""

RETRY = r"; retrying in \d+\.\d s$"


def environment(**env: str) -> dict[str, str]:
    return {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_OFFLINE": "1", **env}


def run(module: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env=environment(**env),
    )


async def start(module: str, cwd: Path, **env: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        module,
        cwd=cwd,
        env=environment(**env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


async def read_until(process: asyncio.subprocess.Process, pattern: str, times: int = 1) -> list[str]:
    """The lines `process` writes until `times` of them matched `pattern` (a regex), within 20 s."""
    assert process.stderr is not None
    lines: list[str] = []
    async with asyncio.timeout(20):
        while sum(bool(re.search(pattern, line)) for line in lines) < times:
            line = await process.stderr.readline()
            assert line, f"exited ({await process.wait()}) before {pattern!r}:\n" + "\n".join(lines)
            lines.append(line.decode().rstrip("\n"))
    return lines


async def terminate(process: asyncio.subprocess.Process) -> tuple[int, list[str]]:
    """SIGTERM, then the exit code and the lines written after it; the process must end within 10 s."""
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(10):
        _, rest = await process.communicate()
    assert process.returncode is not None
    return process.returncode, rest.decode().splitlines()


def assert_one_line_each_and_no_secret(lines: list[str], token: str) -> None:
    assert not [line for line in lines if not LOG_LINE.match(line)], "\n".join(lines)
    assert token not in "\n".join(lines)


def test_runner_with_a_model_that_does_not_exist_exits_with_one_clear_line(tmp_path: Path) -> None:
    result = run("runner", tmp_path, MODEL=str(tmp_path / "no-such-model"), HF_TOKEN="hf_secretvalue123456")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "hf_secretvalue123456" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if "cannot start" in line]
    assert "MODEL" in line and "no-such-model" in line


def test_runner_with_a_folder_that_is_not_a_model_exits_with_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "config.json").write_text("{not json")
    result = run("runner", tmp_path, MODEL=str(tmp_path / "junk"))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert "cannot start" in result.stderr


async def test_bot_and_updater_with_a_rejected_token_exit_with_one_clear_line(
    fake_discord: FakeDiscord, tmp_path: Path
) -> None:
    env = {
        "DISCORD_TOKEN": BAD_TOKEN,
        "DISCORD_API_BASE": fake_discord.api_base,
        "DISCORD_GATEWAY_URL": fake_discord.gateway_url,
        "REDIS_URL": "redis://127.0.0.1:1/0",
    }
    for module in ("bot", "updater"):
        # In a thread: the fake Discord answering the process runs on this test's event loop.
        process = await asyncio.to_thread(run, module, tmp_path, **env)
        assert process.returncode == 2, process.stderr
        [line] = [line for line in process.stderr.splitlines() if "Discord rejected DISCORD_TOKEN" in line]
        assert "cannot start" in line
        assert "Traceback" not in process.stderr and BAD_TOKEN not in process.stderr


@pytest.mark.parametrize("module", ["bot", "updater"])
@pytest.mark.parametrize("unreachable", ["unresolvable host", "closed port"])
async def test_bot_and_updater_with_discord_unreachable_say_so_once_per_attempt_and_stop_cleanly(
    module: str, unreachable: str, tmp_path: Path
) -> None:
    port = free_port()
    host, reason = ("discord.invalid", "cannot resolve discord.invalid")
    if unreachable == "closed port":
        host, reason = f"127.0.0.1:{port}", "connection refused"
    api_base = f"http://{host}{API_PREFIX}"
    env = {"DISCORD_API_BASE": api_base, "DISCORD_GATEWAY_URL": f"ws://{host}/gateway"}
    process = await start(module, tmp_path, DISCORD_TOKEN=BAD_TOKEN, REDIS_URL="redis://127.0.0.1:1/0", **env)
    message = re.escape(f"WARNING shared.runtime.discord_connect: Discord unreachable at {api_base} ({reason})") + RETRY
    lines = await read_until(process, message, times=3)
    code, after = await terminate(process)
    assert code == 0, "\n".join(lines + after)
    attempts = lines[next(i for i, line in enumerate(lines) if re.search(message, line)) :]
    assert all(re.search(message, line) for line in attempts), "\n".join(attempts)
    assert_one_line_each_and_no_secret(lines + after, BAD_TOKEN)


async def test_bot_with_the_gateway_unreachable_at_first_connect_says_so_once_per_attempt_and_stops_cleanly(
    fake_discord: FakeDiscord, redis_server: RedisServer, tmp_path: Path
) -> None:
    gateway = f"ws://127.0.0.1:{free_port()}/gateway"
    env = {"DISCORD_API_BASE": fake_discord.api_base, "DISCORD_GATEWAY_URL": gateway, "REDIS_URL": redis_server.url}
    process = await start("bot", tmp_path, DISCORD_TOKEN=fake_discord.token, **env)
    message = re.escape(f"Discord gateway unreachable at {gateway} (connection refused)") + RETRY
    lines = await read_until(process, message, times=3)
    code, after = await terminate(process)
    assert code == 0, "\n".join(lines + after)
    assert_one_line_each_and_no_secret(lines + after, fake_discord.token)


async def test_bot_and_updater_started_before_discord_connect_once_it_answers_and_a_later_drop_is_one_line_each(
    redis_server: RedisServer, tmp_path: Path
) -> None:
    port = free_port()
    fake = FakeDiscord(port=port)
    env = {
        "DISCORD_TOKEN": fake.token,
        "DISCORD_API_BASE": f"http://127.0.0.1:{port}{API_PREFIX}",
        "DISCORD_GATEWAY_URL": f"ws://127.0.0.1:{port}/gateway",
        "REDIS_URL": redis_server.url,
    }
    bot, updater = await start("bot", tmp_path, **env), await start("updater", tmp_path, **env)
    try:
        lines = {
            bot: await read_until(bot, "Discord unreachable at"),
            updater: await read_until(updater, "Discord unreachable at"),
        }
        await fake.start()
        lines[bot] += await read_until(bot, "connected to Discord as")
        lines[updater] += await read_until(updater, "posting as")
        # Gone after READY: discord.py's own reconnect loop retries, its lines without a traceback.
        await fake.stop()
        lines[bot] += await read_until(bot, r"ERROR discord.client: Attempting a reconnect in .*s \(gateway: ", times=2)
        for process, seen in lines.items():
            code, after = await terminate(process)
            assert code == 0, "\n".join(seen + after)
            assert_one_line_each_and_no_secret(seen + after, fake.token)
    finally:
        for process in (bot, updater):
            if process.returncode is None:
                process.kill()
                await process.wait()
        await fake.stop()
