"""Which model answers a message: the user's choice (in a shared thread, the choice of whoever opened it), else the
server's default, else DEFAULT_MODEL, else the only or first model served; and storing those choices."""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Literal

from redis.asyncio import Redis

from shared.queues.served_models import LiveModels
from shared.storage.keys import Keys
from shared.storage.scripts import Scripts

RouteReason = Literal["choice", "server_default", "bot_default", "only", "first", "none"]

DEFAULT_MODEL_FIELD = "default_model"
"""The field of a server's settings hash (server:{guild}) naming its default model."""


@dataclass(frozen=True)
class Route:
    """The model a message goes to, and why."""

    model: str | None
    """None when no model is served or was ever chosen: the job names none, and the first runner to come answers it."""
    reason: RouteReason
    served: bool
    """Whether a live runner serves it now (if not, the message waits for one, and its author is told)."""
    unserved_choice: str | None = None
    """The model chosen (by the user, or whoever opened the thread) when it is not served now and another answers."""


@dataclass(frozen=True)
class Lookup:
    """What routing read, and where it leads."""

    choice: str | None
    server_default: str | None
    served: dict[str, int]
    """Live runners per model served now."""
    route: Route


def route(*, choice: str | None, server_default: str | None, bot_default: str, served: Collection[str]) -> Route:
    """The first of the choice, the server's default and DEFAULT_MODEL that a live runner serves, else the only or
    first model served; while nothing is served, the first of them set (the message waits for it)."""
    candidates: list[tuple[RouteReason, str | None]] = [
        ("choice", choice),
        ("server_default", server_default),
        ("bot_default", bot_default or None),
    ]
    if served:
        unserved_choice = choice if choice and choice not in served else None
        for reason, model in candidates:
            if model and model in served:
                return Route(model, reason, True, unserved_choice)
        ordered = sorted(served)
        return Route(ordered[0], "only" if len(ordered) == 1 else "first", True, unserved_choice)
    for reason, model in candidates:
        if model:
            return Route(model, reason, False)
    return Route(None, "none", False)


class ModelChoices:
    """People's and servers' choices of model, and routing by them among the models served now."""

    def __init__(self, redis: Redis, keys: Keys, live: LiveModels, bot_default: str) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts.register(redis)
        self.live = live
        self._bot_default = bot_default

    async def route(self, chooser: str | None, guild_id: str | None) -> Route:
        """Where a message goes whose model `chooser` picks (its author, or the starter of its shared thread; None:
        nobody's choice holds) in `guild_id` (None in a DM): one round trip, and the live models as last read."""
        return (await self.route_reading(chooser, guild_id))[0]

    async def route_reading(
        self, chooser: str | None, guild_id: str | None, fields: Sequence[str] = ()
    ) -> tuple[Route, dict[str, str | None]]:
        """The route, and the server's settings `fields` (personas, allowed channels) read in the same round trip."""
        choice, server_default, found = await self.read(chooser, guild_id, fields)
        served = await self.live.cached()
        return route(choice=choice, server_default=server_default, bot_default=self._bot_default, served=served), found

    async def look(self, chooser: str | None, guild_id: str | None, *, fresh: bool = True) -> Lookup:
        """The choices that route a message, the models served (read now unless not `fresh`), and the route."""
        choice, server_default = await self.choices(chooser, guild_id)
        served = await (self.live.fresh() if fresh else self.live.cached())
        found = route(choice=choice, server_default=server_default, bot_default=self._bot_default, served=served)
        return Lookup(choice, server_default, served, found)

    async def choices(self, chooser: str | None, guild_id: str | None) -> tuple[str | None, str | None]:
        """(the chooser's choice, the server's default), each None where unset."""
        choice, server_default, _ = await self.read(chooser, guild_id)
        return choice, server_default

    async def read(
        self, chooser: str | None, guild_id: str | None, fields: Sequence[str] = ()
    ) -> tuple[str | None, str | None, dict[str, str | None]]:
        """(the chooser's choice, the server's default, the server's other `fields`) in one round trip."""
        if chooser is None and guild_id is None:
            return None, None, {}
        k = self._keys
        async with self._redis.pipeline(transaction=False) as pipe:
            if chooser is not None:
                pipe.get(k.choice(chooser))
            if guild_id is not None:
                pipe.hmget(k.server(guild_id), [DEFAULT_MODEL_FIELD, *fields])
            found = await pipe.execute()
        choice = found.pop(0) if chooser is not None else None
        if guild_id is None:
            return choice, None, {}
        server_default, *values = found[0]
        return choice, server_default, dict(zip(fields, values, strict=True))

    async def choose(self, user_id: str, model: str) -> bool:
        """Stores the user's choice; False (nothing stored) if they are not opted in."""
        k = self._keys
        return bool(await self._scripts.set_choice(keys=[k.optin, k.choice(user_id)], args=[user_id, model]))

    async def set_server_default(self, guild_id: str, model: str) -> None:
        await self._redis.hset(self._keys.server(guild_id), DEFAULT_MODEL_FIELD, model)
