"""The Lua scripts behind every multi-key change, loaded from `shared/lua/` and registered once per client."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis
from redis.commands.core import AsyncScript

_SCRIPT_NAMES = (
    "enqueue", "complete", "fail", "reap_runner", "reap_updater", "release", "optout", "revise", "replay",
)


def _source(name: str) -> str:
    lua = resources.files("shared") / "lua"
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
    optout: AsyncScript
    revise: AsyncScript
    replay: AsyncScript

    @classmethod
    def register(cls, redis: Redis) -> Scripts:
        return cls(**{name: redis.register_script(_source(name)) for name in _SCRIPT_NAMES})
