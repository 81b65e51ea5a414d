"""Which of an updater's Discord requests may go now: final answers always (waiting their turn), partial edits and
acknowledgements only with room to spare, globally and in their channel, so that they are spaced out or skipped
when Discord's limits are near and never delay a final answer."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from shared.runtime.rate_limit import RequestBudget

SPARE_SHARE = 0.25
"""Share of the request budget kept free for final answers: optional requests go only below the rest."""

CHANNEL_LIMIT = 5
CHANNEL_WINDOW_S = 5.0
"""Discord's per-channel limit: 5 messages per 5 s in one channel, edits included."""
CHANNEL_RESERVE = 1
"""Of those, kept for final answers: a busy channel's partial updates space out on their own."""

CHANNELS_TRACKED = 10_000


class Pacing:
    def __init__(self, budget: RequestBudget, clock: Callable[[], float] = time.monotonic) -> None:
        self.budget = budget
        self._clock = clock
        self._channels: dict[int, deque[float]] = {}

    async def must(self, channel_id: int) -> None:
        """For a request that is never skipped: waits for the global budget (discord.py waits for the channel's)."""
        await self.budget.take()
        self._note(channel_id)

    def may(self, channel_id: int) -> bool:
        """For a message request (create, edit) that may be skipped: counts it and says yes only with room to spare,
        globally and in the channel."""
        if self._recent(channel_id) >= CHANNEL_LIMIT - CHANNEL_RESERVE:
            return False
        if not self.budget.try_take(headroom=SPARE_SHARE):
            return False
        self._note(channel_id)
        return True

    def may_nicety(self) -> bool:
        """For a reaction or typing, which Discord limits apart from a channel's messages: global room only."""
        return self.budget.try_take(headroom=SPARE_SHARE)

    def _recent(self, channel_id: int) -> int:
        sent = self._channels.get(channel_id)
        if sent is None:
            return 0
        while sent and sent[0] <= self._clock() - CHANNEL_WINDOW_S:
            sent.popleft()
        return len(sent)

    def _note(self, channel_id: int) -> None:
        if channel_id not in self._channels and len(self._channels) >= CHANNELS_TRACKED:
            self._channels.pop(next(iter(self._channels)))
        self._channels.setdefault(channel_id, deque()).append(self._clock())
