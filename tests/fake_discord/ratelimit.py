"""Discord's per-channel message limit, off unless a test asks: sends and edits in one channel share a bucket."""

from __future__ import annotations

import math
import re
import time
import zlib
from collections import deque
from dataclasses import dataclass, field

from aiohttp import web

from tests.fake_discord.faults import json_response

MESSAGE_WRITE = re.compile(r"/channels/(\d+)/messages(/\d+)?")
"""POST .../messages (a send) and PATCH .../messages/{id} (an edit), which the limit covers."""


@dataclass
class ChannelMessageLimit:
    """At most `count` sends and edits per channel in any `per_s` seconds, counted when they arrive.

    Discord describes a bucket that refills at its reset; the fake counts a rolling window instead, which is
    stricter (no burst across a reset), so a client that keeps within it keeps within Discord's. Answers
    advertise it in X-RateLimit-* headers (Remaining, and Reset-After: when the next slot frees), which
    discord.py obeys by waiting ahead of time; a request over the limit gets 429 with `Via` and `retry_after`,
    which discord.py sleeps and retries.
    """

    count: int
    per_s: float
    _accepted: dict[str, deque[float]] = field(default_factory=dict)

    @staticmethod
    def channel_of(method: str, path: str) -> str | None:
        """The channel whose bucket a request uses, or None if the limit does not cover it."""
        match = MESSAGE_WRITE.fullmatch(path)
        if match is None or (method, bool(match[2])) not in (("POST", False), ("PATCH", True)):
            return None
        return match[1]

    def take(self, channel_id: str) -> tuple[bool, dict[str, str]]:
        """Counts a request against its channel: whether it may go through, and the headers to answer with."""
        now = time.monotonic()
        accepted = self._accepted.setdefault(channel_id, deque())
        while accepted and accepted[0] <= now - self.per_s:
            accepted.popleft()
        allowed = len(accepted) < self.count
        if allowed:
            accepted.append(now)
        reset_after = max(0.0, accepted[0] + self.per_s - now) if accepted else 0.0
        headers = {
            "X-RateLimit-Limit": str(self.count),
            "X-RateLimit-Remaining": str(self.count - len(accepted)),
            "X-RateLimit-Reset": f"{time.time() + reset_after:.3f}",
            "X-RateLimit-Reset-After": f"{reset_after:.3f}",
            "X-RateLimit-Bucket": f"{zlib.crc32(b'channel messages'):08x}",
        }
        return allowed, headers

    @staticmethod
    def refusal(headers: dict[str, str]) -> web.Response:
        """Discord's 429 for a shared (per-resource) limit; `Via` tells discord.py it is not a Cloudflare ban."""
        retry_after = float(headers["X-RateLimit-Reset-After"])
        limit_headers = {
            **headers,
            "Via": "1.1 google",
            "Retry-After": str(math.ceil(retry_after)),
            "X-RateLimit-Scope": "shared",
        }
        body = {"message": "The resource is being rate limited.", "retry_after": retry_after, "global": False}
        return json_response(body, status=429, headers=limit_headers)
