"""The Lua scripts behind every multi-key change, loaded from `shared/storage/lua/` and registered once per client."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError

_SCRIPT_NAMES = (
    "enqueue",
    "complete",
    "fail",
    "reap_runner",
    "reap_updater",
    "release",
    "release_runner",
    "optout",
    "forget",
    "revise",
    "replay",
    "claim_waiting",
    "open_thread",
    "claimed_head",
    "stream",
    "started",
    "take_posting",
    "posting_lock",
    "mark_unavailable_told",
    "set_choice",
    "reroute",
    "add_allowed",
    "remove_allowed",
    "reset_allowed",
    "hint_once",
)

ScriptCall = tuple[Sequence[str], Sequence[str | int | float]]
"""The KEYS and ARGV of one run of a script."""


def _source(name: str) -> str:
    lua = resources.files("shared.storage") / "lua"
    common = (lua / "_common.lua").read_text(encoding="utf-8")
    return common + "\n" + (lua / f"{name}.lua").read_text(encoding="utf-8")


@dataclass(frozen=True)
class Scripts:
    """Registered scripts; redis-py runs each by EVALSHA and loads it again after a Redis restart."""

    enqueue: AsyncScript
    complete: AsyncScript
    fail: AsyncScript
    reap_runner: AsyncScript
    reap_updater: AsyncScript
    release: AsyncScript
    release_runner: AsyncScript
    optout: AsyncScript
    forget: AsyncScript
    revise: AsyncScript
    replay: AsyncScript
    claim_waiting: AsyncScript
    open_thread: AsyncScript
    claimed_head: AsyncScript
    stream: AsyncScript
    started: AsyncScript
    take_posting: AsyncScript
    posting_lock: AsyncScript
    mark_unavailable_told: AsyncScript
    set_choice: AsyncScript
    reroute: AsyncScript
    add_allowed: AsyncScript
    remove_allowed: AsyncScript
    reset_allowed: AsyncScript
    hint_once: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        return cls(**{name: redis.register_script(_source(name)) for name in _SCRIPT_NAMES})


async def run_pipelined(redis: Redis, script: AsyncScript, calls: Sequence[ScriptCall]) -> list[Any]:
    """Runs `script` once per call in one round trip; each run is still atomic on its own."""
    if not calls:
        return []
    async with redis.pipeline(transaction=False) as pipe:
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        results: list[Any] = await pipe.execute(raise_on_error=False)
    return [await _rerun_if_unknown(result, script, call) for result, call in zip(results, calls, strict=True)]


async def command_then_scripts(
    redis: Redis, command: Sequence[str | int | float], script: AsyncScript, calls: Sequence[ScriptCall]
) -> tuple[Any, list[Any]]:
    """A command and several runs of a script in one round trip (a read the caller needs, and writes beside it)."""
    async with redis.pipeline(transaction=False) as pipe:
        pipe.execute_command(*command)
        for keys, args in calls:
            pipe.evalsha(script.sha, len(keys), *keys, *args)
        first, *results = await pipe.execute(raise_on_error=False)
    if isinstance(first, Exception):
        raise first
    return first, [await _rerun_if_unknown(result, script, call) for result, call in zip(results, calls, strict=True)]


async def command_then_script(
    redis: Redis, command: Sequence[str | int | float], script: AsyncScript, call: ScriptCall
) -> tuple[Any, Any]:
    """Sends a command and a script in one round trip; the script runs once the command is done.

    With a blocking command (BLMOVE) first, the script runs as soon as it returns, so it can read what
    BLMOVE moved without a second round trip (other clients' commands may still run in between).
    """
    keys, args = call
    async with redis.pipeline(transaction=False) as pipe:
        pipe.execute_command(*command)
        pipe.evalsha(script.sha, len(keys), *keys, *args)
        first, second = await pipe.execute(raise_on_error=False)
    if isinstance(first, Exception):
        raise first
    return first, await _rerun_if_unknown(second, script, call)


async def _rerun_if_unknown(result: Any, script: AsyncScript, call: ScriptCall) -> Any:
    """Plain EVALSHAs are pipelined, rather than redis-py's pipeline script support, which asks SCRIPT EXISTS
    first (a second round trip every time). A run answered NOSCRIPT (Redis restarted, or its script cache
    was flushed) was not carried out, so it is run again on its own, which loads the script."""
    if isinstance(result, NoScriptError):
        keys, args = call
        return await script(keys=keys, args=args)
    if isinstance(result, Exception):
        raise result
    return result
