"""A client-side request budget, so processes stay under Discord's global rate limit instead of running into 429s."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable


class RequestBudget:
    """At most `per_s` requests per second, counted over every sliding window, never merely on average.

    A token bucket lets a full bucket's burst and the next second's refill land within one second, which
    is how a client at "40/s" sends 80 requests in one second. Here the last requests' times are kept, and a
    request may go only once `limit` requests fit in `window_s` counting it. For rates under one per second
    the window stretches (0.5/s allows 1 request per 2 s).
    """

    def __init__(
        self,
        per_s: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        waited: Callable[[float], None] | None = None,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self._waited = waited
        """Told how long each `take` waited (0 for most): the budget-wait histogram."""
        self._sent: deque[float] = deque()
        self.limit = 1
        self.window_s = 1.0
        self.set_rate(per_s)

    @property
    def per_s(self) -> float:
        return self.limit / self.window_s

    def set_rate(self, per_s: float) -> None:
        """Changes the budget (e.g. when it is shared among more processes); requests already sent still count."""
        if not per_s > 0:
            raise ValueError(f"rate must be positive, got {per_s}")
        self.limit = max(1, math.floor(per_s))
        self.window_s = self.limit / per_s

    def wait_s(self) -> float:
        """How long until one more request fits in the budget; 0 if it fits now."""
        now = self._clock()
        while self._sent and self._sent[0] <= now - self.window_s:
            self._sent.popleft()
        if len(self._sent) < self.limit:
            return 0.0
        # The request that leaves the window first is the limit-th most recent.
        return self._sent[-self.limit] + self.window_s - now

    def try_take(self, *, headroom: float = 0.0) -> bool:
        """Counts one request if it fits now, leaving `headroom` (a share of the budget) free for requests that
        must not be skipped; False (and nothing counted) otherwise."""
        if self.wait_s() > 0 or len(self._sent) >= self.limit * (1.0 - headroom):
            return False
        self._sent.append(self._clock())
        return True

    async def take(self) -> None:
        """Waits until one more request fits, then counts it."""
        asked_at = self._clock()
        while (wait := self.wait_s()) > 0:
            await self._sleep(wait)
        now = self._clock()
        self._sent.append(now)
        if self._waited is not None:
            self._waited(now - asked_at)
