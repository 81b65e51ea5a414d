"""Which Redis `llama-discord-bot run` picks (REDIS_URL, one already listening, or its own), and what stops it."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from launcher.errors import LauncherError
from launcher.local_redis import choose_redis
from shared.config.settings import Settings
from tests.redis_server import RedisServer, free_port


def settings_for(port: int, cache: Path) -> Settings:
    return Settings(local_redis_port=port, model_cache_dir=cache)


async def test_a_given_redis_url_is_used_as_it_is(tmp_path: Path) -> None:
    choice = await choose_redis(settings_for(free_port(), tmp_path), redis_url_given=True)
    assert choice.url is None and choice.server_command is None  # the processes read REDIS_URL themselves
    assert not (tmp_path / "redis").exists()


async def test_a_redis_already_listening_is_used(redis_server: RedisServer, tmp_path: Path) -> None:
    choice = await choose_redis(settings_for(redis_server.port, tmp_path), redis_url_given=False)
    assert choice.url == f"redis://127.0.0.1:{redis_server.port}/0" and choice.server_command is None


async def test_with_nothing_listening_its_own_server_is_planned_with_aof_in_the_cache(tmp_path: Path) -> None:
    port = free_port()
    choice = await choose_redis(settings_for(port, tmp_path), redis_url_given=False)
    assert choice.url == f"redis://127.0.0.1:{port}/0"
    assert choice.server_command is not None
    command = choice.server_command
    assert Path(command[0]).name == "valkey-server"
    options = dict(zip(command[1::2], command[2::2], strict=True))
    assert options["--bind"] == "127.0.0.1" and options["--port"] == str(port)
    assert options["--appendonly"] == "yes" and options["--dir"] == str(tmp_path / "redis")
    assert (tmp_path / "redis").is_dir()


async def test_a_redis_that_wants_a_password_is_not_taken_for_free(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, password="s3cret-pass")
    server.start()
    try:
        with pytest.raises(LauncherError, match="wants a password: put its URL in REDIS_URL"):
            await choose_redis(settings_for(server.port, tmp_path), redis_url_given=False)
    finally:
        server.stop()


async def test_something_else_on_the_port_is_named_not_overrun(tmp_path: Path) -> None:
    async def answer_like_http(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        writer.write(b"HTTP/1.1 400 Bad Request\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer_like_http, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        with pytest.raises(
            LauncherError, match=r"something other than Redis listens at 127\.0\.0\.1:.*LOCAL_REDIS_PORT"
        ):
            await choose_redis(settings_for(port, tmp_path), redis_url_given=False)
    finally:
        server.close()
        await server.wait_closed()
