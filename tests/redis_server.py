"""A real redis-server for the tests: started on a free port in a temp dir, stoppable and restartable."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SERVER_BINARY_VARIABLE = "REDIS_SERVER_BINARY"
"""Names another Redis-compatible server to test against, e.g. the embedded valkey-server `make run` uses."""


def server_binary() -> str:
    """`redis-server` from PATH (what CI uses), unless REDIS_SERVER_BINARY names another binary."""
    binary = os.environ.get(SERVER_BINARY_VARIABLE) or shutil.which("redis-server")
    if binary is None:
        raise RuntimeError(
            f"redis-server is not installed (apt-get install redis-server), nor {SERVER_BINARY_VARIABLE} set"
        )
    return binary


class RedisServer:
    def __init__(self, directory: Path, password: str = "") -> None:
        binary = server_binary()
        self.binary = binary
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self) -> None:
        args = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            "always",
            "--protected-mode",
            "no",
        ]
        if self.password:
            args += ["--requirepass", self.password]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None
