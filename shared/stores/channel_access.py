"""Where the bot speaks: every channel it sees until a server's administrators allow some (then only those, and
their threads), DMs as ALLOW_DMS says; and the one hint an hour it gives someone who addresses it elsewhere."""

from __future__ import annotations

import time
from collections.abc import Mapping

from redis.asyncio import Redis

from shared.storage.keys import Keys
from shared.stores.allow_lists import AllowList
from shared.stores.places import Place

ALLOW_FIELD_PREFIX = "allow:"
"""Fields allow:<channel> of a server's settings hash (server:{guild}) list its allowed channels."""

ALLOWED_COUNT_FIELD = "allowed_channels"
"""How many channels the server allows; absent while it has no allow-list (the bot speaks everywhere)."""

HINT_INTERVAL_S = 3600
"""Someone who addresses the bot where it does not speak is told so at most once per channel this often."""


def allow_field(channel_id: str) -> str:
    return f"{ALLOW_FIELD_PREFIX}{channel_id}"


def access_fields(place: Place) -> list[str]:
    """The fields that decide whether the bot speaks at `place` (none in a DM)."""
    if place.guild_id is None:
        return []
    return [ALLOWED_COUNT_FIELD, *(allow_field(channel) for channel in place.channels)]


def may_speak(values: Mapping[str, str | None], place: Place, *, allow_dms: bool) -> bool:
    """Whether the bot answers at `place`, from the values read for access_fields(place): in a DM as ALLOW_DMS says;
    in a server everywhere until it has an allow-list, then in its channels and their threads."""
    if place.guild_id is None:
        return allow_dms
    if not values.get(ALLOWED_COUNT_FIELD):
        return True
    return any(values.get(allow_field(channel)) for channel in place.channels)


class ChannelAccess(AllowList):
    """A server's channel allow-list (allow, deny, allowed, reset: AllowList), and the hints given outside it."""

    def __init__(self, redis: Redis, keys: Keys, *, allow_dms: bool) -> None:
        super().__init__(redis, keys, prefix=ALLOW_FIELD_PREFIX, count_field=ALLOWED_COUNT_FIELD)
        self.allow_dms = allow_dms

    async def may_speak(self, place: Place) -> bool:
        """Whether the bot answers at `place` now (one round trip in a server; none in a DM)."""
        fields = access_fields(place)
        if not fields or place.guild_id is None:
            return may_speak({}, place, allow_dms=self.allow_dms)
        found = await self._redis.hmget(self._keys.server(place.guild_id), fields)
        return may_speak(dict(zip(fields, found, strict=True)), place, allow_dms=self.allow_dms)

    async def hint_due(self, user_id: str, place: Place, now: float | None = None) -> list[str] | None:
        """None when the user is not to be told (not opted in, or told in this channel within the hour); else the
        server's allowed channels to point them to (empty in a DM). Remembers the hint under the user's key."""
        k = self._keys
        keys = [k.optin, k.hinted(user_id)]
        if place.guild_id is not None:
            keys.append(k.server(place.guild_id))
        args = [user_id, place.channel_id, time.time() if now is None else now, HINT_INTERVAL_S, ALLOW_FIELD_PREFIX]
        found = await self._scripts.hint_once(keys=keys, args=args)
        return None if found is None else sorted(found, key=int)
