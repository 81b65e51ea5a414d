"""What clients did to the fake Discord, recorded for assertions, with a way to wait until something happened."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.fake_discord.state import Payload


@dataclass
class Journal:
    posted: list[Payload] = field(default_factory=list)
    edits: list[Payload] = field(default_factory=list)
    deleted: list[tuple[str, str]] = field(default_factory=list)
    """(channel id, message id) of each message the bot deleted."""
    typing: list[str] = field(default_factory=list)
    reactions: list[tuple[str, str, str]] = field(default_factory=list)
    reactions_removed: list[tuple[str, str, str]] = field(default_factory=list)
    """The bot's own reactions it took back (channel, message, emoji), as `reactions` are the ones it added."""
    requests: list[tuple[str, str, int]] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)
    """time.monotonic() at which each entry of `requests` was answered, for request-rate checks."""
    command_syncs: list[tuple[str, list[str]]] = field(default_factory=list)
    """Each bulk overwrite of application commands: ("global" or the guild id, the command names)."""
    identify_count: int = 0
    resume_count: int = 0
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def notify(self) -> None:
        """Wakes every waiter so it re-checks its condition; called after any change above."""
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(
        self,
        condition: Callable[[], bool],
        *,
        timeout: float,
        describe: Callable[[], str],
    ) -> None:
        """Returns once `condition()` holds; raises TimeoutError carrying `describe()` if `timeout` s pass first."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    await self._changed.wait()
        except TimeoutError:
            raise TimeoutError(f"fake Discord: gave up after {timeout:.1f}s: {describe()}") from None

    def recent_requests(self, limit: int = 10) -> str:
        return ", ".join(f"{method} {path} -> {status}" for method, path, status in self.requests[-limit:]) or "none"
