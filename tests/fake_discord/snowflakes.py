"""Snowflake ids as Discord makes them: time-ordered, and for guilds also the key that picks their gateway shard."""

from __future__ import annotations

import time

DISCORD_EPOCH_MS = 1_420_070_400_000
"""Milliseconds since the Unix epoch at Discord's epoch (2015-01-01), the origin of snowflake timestamps."""


class Snowflakes:
    """Hands out snowflake ids that encode the current time and strictly increase, as Discord's do."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> str:
        from_clock = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self._last = max(from_clock, self._last + 1)
        return str(self._last)

    def next_on_shard(self, shard_id: int, shard_count: int) -> str:
        """The next id of a guild that lands on `shard_id`: Discord shards by `(guild_id >> 22) % shard_count`.

        The shard follows the id's millisecond part, so the id may be a few milliseconds ahead of the clock.
        """
        if not 0 <= shard_id < shard_count:
            raise ValueError(f"shard {shard_id} is not one of {shard_count} shards")
        millis = int(self.next()) >> 22
        ahead = (shard_id - millis) % shard_count
        if ahead:
            self._last = (millis + ahead) << 22
        return str(self._last)
