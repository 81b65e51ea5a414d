"""Where a Discord message was written, as shared/stores/places.py describes it: its server, channel, and the channel a
thread belongs to (looked up once over REST for a thread discord.py has not seen, then remembered)."""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable

import discord

from shared.stores.places import Place

log = logging.getLogger(__name__)

PARENTS_KEPT = 10_000
"""Parents of threads discord.py did not know, remembered (in memory only): a thread never changes its parent."""

FetchChannel = Callable[[int], Awaitable[object]]


class Places:
    def __init__(self, fetch_channel: FetchChannel) -> None:
        self._fetch_channel = fetch_channel
        self._parents: OrderedDict[int, int | None] = OrderedDict()

    async def of(self, message: discord.Message) -> Place:
        return await self.at(message.guild, message.channel)

    async def at(self, guild: discord.Guild | None, channel: object) -> Place:
        """The place of a message or an interaction: its guild (None in a DM, or where discord.py has not seen it)
        and channel (any messageable with an id)."""
        channel_id = getattr(channel, "id", 0)
        if guild is None:
            guild_id = getattr(channel, "guild_id", None)  # a partial channel of a server discord.py has not seen
            if guild_id is None:
                return Place(None, str(channel_id))
            known = await self._parent_of(channel_id)
            return Place(str(guild_id), str(channel_id), str(known) if known else None)
        parent: int | None = None
        if isinstance(channel, discord.Thread):
            parent = channel.parent_id
        elif isinstance(channel, discord.PartialMessageable):
            parent = await self._parent_of(channel_id)
        return Place(str(guild.id), str(channel_id), str(parent) if parent else None, guild.name)

    async def _parent_of(self, channel_id: int) -> int | None:
        """The parent of a channel discord.py has not seen (a thread opened before a restart), asked once."""
        if channel_id in self._parents:
            return self._parents[channel_id]
        try:
            channel = await self._fetch_channel(channel_id)
        except discord.HTTPException as exc:
            log.warning("could not look up channel %s (%s); taken as a channel of its own", channel_id, exc.status)
            return None
        parent = channel.parent_id if isinstance(channel, discord.Thread) else None
        self._parents[channel_id] = parent
        if len(self._parents) > PARENTS_KEPT:
            self._parents.popitem(last=False)
        return parent
