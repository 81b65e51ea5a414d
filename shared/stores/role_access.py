"""Who the bot answers in a server: everyone until its administrators allow some roles, then only members holding
one of them (administrators always). Read with the model and persona, in the same round trip
(shared/stores/model_choice.py)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from redis.asyncio import Redis

from shared.storage.keys import Keys
from shared.storage.scripts import Scripts
from shared.stores.places import Place

ROLE_FIELD_PREFIX = "role:"
"""Fields role:<role> of a server's settings hash (server:{guild}) list the roles it answers."""

ALLOWED_ROLES_FIELD = "allowed_roles"
"""How many roles the server allows; absent while it has no role list (the bot answers every member)."""


def role_field(role_id: str) -> str:
    return f"{ROLE_FIELD_PREFIX}{role_id}"


def role_fields(place: Place, role_ids: Collection[str]) -> list[str]:
    """The fields that decide whether a member holding `role_ids` is answered at `place` (none in a DM)."""
    if place.guild_id is None:
        return []
    return [ALLOWED_ROLES_FIELD, *(role_field(role) for role in role_ids)]


def role_allowed(values: Mapping[str, str | None], role_ids: Collection[str], *, administrator: bool) -> bool:
    """Whether a member is answered, from the values read for role_fields(): yes without a role list, for an
    administrator, or for a member holding one of its roles. In a DM nothing was read, so yes."""
    if administrator or not values.get(ALLOWED_ROLES_FIELD):
        return True
    return any(values.get(role_field(role)) for role in role_ids)


class RoleAccess:
    """A server's role list: `!access role allow|deny|list|reset`."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._scripts = Scripts.register(redis)

    async def allow(self, guild_id: str, role_id: str) -> bool:
        """Adds the role to the server's list; False if it was on it already."""
        keys, args = [self._keys.server(guild_id)], [role_field(role_id), ALLOWED_ROLES_FIELD]
        return bool(await self._scripts.add_allowed(keys=keys, args=args))

    async def deny(self, guild_id: str, role_id: str) -> tuple[bool, int]:
        """Removes the role from the list: (whether it was on it, how many roles are left on it)."""
        keys, args = [self._keys.server(guild_id)], [role_field(role_id), ALLOWED_ROLES_FIELD]
        removed, left = await self._scripts.remove_allowed(keys=keys, args=args)
        return bool(removed), int(left)

    async def allowed(self, guild_id: str) -> list[str]:
        """The server's allowed role ids (empty: no role list, every member is answered)."""
        fields = await self._redis.hkeys(self._keys.server(guild_id))
        return sorted((f.removeprefix(ROLE_FIELD_PREFIX) for f in fields if f.startswith(ROLE_FIELD_PREFIX)), key=int)

    async def reset(self, guild_id: str) -> int:
        """Removes the role list (every member is answered again); returns how many roles were on it."""
        keys, args = [self._keys.server(guild_id)], [ROLE_FIELD_PREFIX, ALLOWED_ROLES_FIELD]
        return int(await self._scripts.reset_allowed(keys=keys, args=args))
