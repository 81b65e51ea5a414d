"""Personas: a system prompt a server's administrators set for the server or one channel (threads follow their
channel), stored as fields of the server's settings hash, read with the model choice in the bot's one round trip,
and carried by the job to the runner, which fills `{date}` and `{server}` when it answers."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from typing import Literal

from redis.asyncio import Redis

from shared.storage.keys import Keys
from shared.stores.places import Place

PERSONA_MAX_CHARS = 1500
"""Longest persona: it is read before every message of its server or channel (a longer one crowds out the
conversation in small context windows), and `!persona show` must fit in one Discord message."""

SERVER_PERSONA_FIELD = "persona"
"""The field of a server's settings hash (server:{guild}) holding the server's persona."""

PersonaSource = Literal["channel", "parent", "server", "default"]

_PLACEHOLDER = re.compile(r"\{(date|server)\}")


def channel_persona_field(channel_id: str) -> str:
    """The field of the server's settings hash holding one channel's persona."""
    return f"persona:{channel_id}"


def persona_fields(place: Place) -> list[str]:
    """The fields that decide the persona in force at `place`, nearest first (none in a DM)."""
    if place.guild_id is None:
        return []
    return [*(channel_persona_field(channel) for channel in place.channels), SERVER_PERSONA_FIELD]


@dataclass(frozen=True)
class PersonaInForce:
    """The persona that applies somewhere: None means SYSTEM_PROMPT; `channel_id` names the channel it is set on."""

    text: str | None
    source: PersonaSource
    channel_id: str | None = None


def persona_in_force(values: Mapping[str, str | None], place: Place) -> PersonaInForce:
    """The nearest persona set among the values read for persona_fields(place)."""
    if place.guild_id is None:
        return PersonaInForce(None, "default")
    sources: tuple[PersonaSource, ...] = ("channel", "parent")
    for channel, source in zip(place.channels, sources, strict=False):
        text = values.get(channel_persona_field(channel))
        if text:
            return PersonaInForce(text, source, channel)
    server = values.get(SERVER_PERSONA_FIELD)
    return PersonaInForce(server, "server") if server else PersonaInForce(None, "default")


def fill_placeholders(prompt: str, *, today: date, server: str | None) -> str:
    """`{date}` and `{server}` filled in one pass (so a server named "{date}" stays as named); other braces stay."""

    def value(match: re.Match[str]) -> str:
        if match.group(1) == "date":
            return f"{today:%A} {today.day} {today:%B %Y}"
        return server if server is not None else match.group(0)

    return _PLACEHOLDER.sub(value, prompt)


class Personas:
    """Setting, reading and resetting a server's and its channels' personas."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def set(self, guild_id: str, channel_id: str | None, text: str) -> None:
        """Stores the persona of the server (channel_id None) or of one channel; the caller checks its length."""
        if len(text) > PERSONA_MAX_CHARS:
            raise ValueError(f"a persona has at most {PERSONA_MAX_CHARS} characters")
        await self._redis.hset(self._keys.server(guild_id), _field(channel_id), text)

    async def reset(self, guild_id: str, channel_id: str | None) -> bool:
        """Removes the persona of the server or of one channel; True if there was one."""
        return bool(await self._redis.hdel(self._keys.server(guild_id), _field(channel_id)))

    async def in_force(self, place: Place) -> PersonaInForce:
        """The persona that applies at `place` now (one round trip)."""
        fields = persona_fields(place)
        if not fields or place.guild_id is None:
            return PersonaInForce(None, "default")
        found = await self._redis.hmget(self._keys.server(place.guild_id), fields)
        return persona_in_force(dict(zip(fields, found, strict=True)), place)


def _field(channel_id: str | None) -> str:
    return SERVER_PERSONA_FIELD if channel_id is None else channel_persona_field(channel_id)
