"""Who the bot answers in a server: everyone until its administrators allow some roles, then only members holding
one of them (administrators always). Read with the model and persona, in the same round trip
(shared/stores/model_choice.py)."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from redis.asyncio import Redis

from shared.storage.keys import Keys
from shared.stores.allow_lists import AllowList
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


class RoleAccess(AllowList):
    """A server's role list (`!access role allow|deny|list|reset`)."""

    def __init__(self, redis: Redis, keys: Keys) -> None:
        super().__init__(redis, keys, prefix=ROLE_FIELD_PREFIX, count_field=ALLOWED_ROLES_FIELD)
