"""A process that cannot start says why in one line and exits non-zero: no traceback, no secret."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

from tests.fake_discord import FakeDiscord
from tests.system import PROJECT_ROOT

BAD_TOKEN = "not-the-token-0123456789abcdef"


def run(module: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", module],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(PROJECT_ROOT), "HF_HUB_OFFLINE": "1", **env},
    )


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
        assert process.returncode == 1, process.stderr
        assert "Discord rejected DISCORD_TOKEN" in process.stderr
        assert "Traceback" not in process.stderr and BAD_TOKEN not in process.stderr
