"""Where a message was written: its server, its channel, and the channel a thread belongs to, which is what personas
and the channels the bot speaks in are set on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Place:
    guild_id: str | None
    """None in a DM."""
    channel_id: str
    parent_id: str | None = None
    """The channel a thread belongs to (threads follow it); None for a channel, a DM, or a thread whose parent is
    unknown."""
    guild_name: str | None = None

    @property
    def channels(self) -> tuple[str, ...]:
        """The channel, then the one it belongs to: the nearest setting wins."""
        return (self.channel_id,) if self.parent_id is None else (self.channel_id, self.parent_id)
