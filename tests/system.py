"""The three processes as real subprocesses, wired to a fake Discord and a real Redis, for end-to-end tests."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    killed: bool = False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.popen.poll() is None


@dataclass
class System:
    """Starts and stops `python -m bot|runner|updater`; every process logs to its own file."""

    env: dict[str, str]
    log_dir: Path
    processes: list[Process] = field(default_factory=list)

    def start(self, module: str, **overrides: str) -> Process:
        index = sum(p.name.startswith(module) for p in self.processes)
        name = f"{module}{index}"
        log_path = self.log_dir / f"{name}.log"
        env = {**self.env, **overrides}
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                [sys.executable, "-m", module], cwd=self.log_dir, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        process = Process(name, popen, log_path)
        self.processes.append(process)
        return process

    async def wait_for_log(self, process: Process, text: str, timeout: float = 60.0) -> None:
        deadline = asyncio.get_running_loop().time() + timeout
        while text not in process.log():
            if not process.alive():
                raise AssertionError(f"{process.name} exited ({process.popen.returncode}):\n{process.log()}")
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{process.name} did not log {text!r} in {timeout}s:\n{process.log()}")
            await asyncio.sleep(0.05)

    def kill(self, process: Process) -> None:
        process.popen.send_signal(signal.SIGKILL)
        process.popen.wait(timeout=10)
        process.killed = True

    def stop_all(self, timeout: float = 30.0) -> dict[str, int | None]:
        """SIGTERM to every process still running, then their exit codes (None where it had to be killed).

        Processes the test killed on purpose are left out.
        """
        for process in self.processes:
            if process.alive():
                process.popen.send_signal(signal.SIGTERM)
        codes: dict[str, int | None] = {}
        for process in self.processes:
            if process.killed:
                continue
            try:
                codes[process.name] = process.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                process.popen.kill()
                process.popen.wait()
                codes[process.name] = None
        return codes

    def logs(self) -> str:
        return "\n".join(f"===== {p.name}\n{p.log()}" for p in self.processes)


def base_env(*, redis_url: str, api_base: str, gateway_url: str, token: str, model: str) -> dict[str, str]:
    """The environment a deployment would have, pointed at the test doubles; nothing inherited but PATH."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(PROJECT_ROOT),
        "PYTHONUNBUFFERED": "1",
        "HF_HUB_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "OMP_NUM_THREADS": "1",
        "DISCORD_TOKEN": token,
        "DISCORD_API_BASE": api_base,
        "DISCORD_GATEWAY_URL": gateway_url,
        "REDIS_URL": redis_url,
        "MODEL": model,
        "DEVICE": "cpu",
        "DTYPE": "float32",
        "TEMPERATURE": "0",
        "MAX_NEW_TOKENS": "24",
        "HEARTBEAT_TTL_S": "1.5",
        "LOG_LEVEL": "INFO",
        # Whole answers, one post each, as most tests count replies; the streaming tests turn it on.
        "STREAM_INTERVAL_S": "0",
    }
