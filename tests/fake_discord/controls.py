"""What a test does to the fake Discord besides talking in it: faults, held answers, limits, and waiting."""

from __future__ import annotations

from tests.fake_discord.faults import FaultPlan, Hold
from tests.fake_discord.gateway import Gateway
from tests.fake_discord.journal import Journal
from tests.fake_discord.ratelimit import ChannelMessageLimit
from tests.fake_discord.rest import RestApi
from tests.fake_discord.state import Payload


class Controls:
    """FakeDiscord's levers and waits, kept apart from the world it models; FakeDiscord sets the fields below."""

    _journal: Journal
    _faults: FaultPlan
    _gateway: Gateway
    _rest: RestApi
    posted: list[Payload]
    identify_count: int
    resume_count: int

    def limit_channel_messages(self, count: int = 5, per_s: float = 5.0) -> None:
        """Switches on Discord's per-channel limit: the bot's sends and edits in one channel share one bucket.

        Answers advertise the bucket (X-RateLimit-Remaining/Reset-After), so discord.py paces itself; a
        request over the limit gets a shared-scope 429 that discord.py retries. Off by default.
        """
        self._rest.channel_limit = ChannelMessageLimit(count, per_s)

    def fail_next(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int = 1,
        retry_after: float = 0.1,
        global_: bool = False,
        after_handling: bool = False,
    ) -> None:
        """The next `times` REST requests with `method` whose path fully matches `path_regex` get `status`.

        The path is matched without the API prefix (r"/channels/\\d+/messages") or with it. 429 answers carry
        `Via` and `{message, retry_after, global}` so discord.py retries them; 403 is code 50013; 404 is
        10008 (message) or 10003 (channel); 5xx a plain JSON error. With `after_handling` the request is
        carried out first (a message is created) and only its answer is the error, as when Discord fails after
        acting: a client that retries without a nonce then posts twice.
        """
        self._faults.add(
            method,
            path_regex,
            status,
            times=times,
            retry_after=retry_after,
            global_=global_,
            after_handling=after_handling,
        )

    def hold_next(self, method: str, path_regex: str, *, skip: int = 0) -> Hold:
        """Carries out the next matching REST request (after letting `skip` others pass) but holds its answer.

        `await hold.arrived.wait()` returns once the request was handled (e.g. the message exists); the client
        still waits for the answer, so a test can kill or pause it in the window between "Discord acted" and
        "the client knows". `hold.release()` lets the answer go; stopping the fake releases every hold.
        """
        return self._faults.holds.add(method, path_regex, skip=skip)

    async def disconnect_gateway(self, code: int = 4000) -> None:
        """Closes every gateway connection with `code`; sessions are kept, so discord.py RESUMEs them."""
        await self._gateway.close_sockets(code)

    async def wait_for_posts(
        self,
        count: int,
        *,
        timeout: float = 30.0,
        channel_id: str | None = None,
    ) -> list[Payload]:
        """The bot's posts (in `channel_id` if given), once there are at least `count` of them."""

        def matching() -> list[Payload]:
            return [post for post in self.posted if channel_id is None or post["channel_id"] == channel_id]

        def describe() -> str:
            where = f" in channel {channel_id}" if channel_id else ""
            contents = [post.get("content", "")[:80] for post in matching()]
            recent = self._journal.recent_requests()
            return f"wanted {count} posts{where}, have {len(contents)}: {contents}; recent requests: {recent}"

        await self._journal.wait_until(lambda: len(matching()) >= count, timeout=timeout, describe=describe)
        return matching()

    async def wait_identified(self, timeout: float = 30.0, *, count: int = 1) -> None:
        """Returns once `count` IDENTIFYs in all were answered with READY and GUILD_CREATE."""

        def describe() -> str:
            recent = self._journal.recent_requests()
            return f"wanted {count} IDENTIFY, have {self.identify_count}; recent requests: {recent}"

        await self._journal.wait_until(lambda: self.identify_count >= count, timeout=timeout, describe=describe)

    async def wait_resumed(self, timeout: float = 30.0, *, count: int = 1) -> None:
        """Returns once `count` RESUMEs in all were answered (missed events replayed, RESUMED sent)."""

        def describe() -> str:
            return f"wanted {count} RESUME, have {self.resume_count}"

        await self._journal.wait_until(lambda: self.resume_count >= count, timeout=timeout, describe=describe)
