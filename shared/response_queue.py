"""The response side: updaters claim answers by atomic move, post them once, then acknowledge."""

from __future__ import annotations

from dataclasses import dataclass

from redis.asyncio import Redis

from shared import defaults
from shared.keys import Keys
from shared.schemas import Response, decode_response
from shared.scripts import Scripts, command_then_script


@dataclass(frozen=True)
class ClaimedResponse:
    raw: str
    response: Response


@dataclass(frozen=True)
class PostingState:
    opted_in: bool
    posted: dict[int, str]
    """Parts of the job's answer already on Discord: part index -> Discord message id."""


class ResponseQueue:
    def __init__(self, redis: Redis, keys: Keys, posted_ttl_s: int = defaults.DEFAULT_POSTED_TTL_S) -> None:
        self._redis = redis
        self._keys = keys
        self._posted_ttl_s = posted_ttl_s
        self._scripts = Scripts.register(redis)

    async def claim(
        self, updater_id: str, timeout_s: float = defaults.DEFAULT_BLOCK_TIMEOUT_S
    ) -> ClaimedResponse | None:
        raw = await self._redis.blmove(self._keys.response, self._keys.posting(updater_id), timeout_s, "RIGHT", "LEFT")
        return None if raw is None else ClaimedResponse(raw=raw, response=decode_response(raw))

    async def claim_with_state(
        self, updater_id: str, timeout_s: float = defaults.DEFAULT_BLOCK_TIMEOUT_S
    ) -> tuple[ClaimedResponse, PostingState] | None:
        """claim() and the response's posting state, in one round trip for a response nobody claimed before.

        The claim and a script reading the claimed head's consent go pipelined; the posted record (a key named
        after the job, which no script may read undeclared) is only read for a response given back by an updater,
        since until then no part of it can have been posted.
        """
        k = self._keys
        raw, (head, opted_in) = await command_then_script(
            self._redis,
            ("BLMOVE", k.response, k.posting(updater_id), "RIGHT", "LEFT", timeout_s),
            self._scripts.claimed_head,
            ([k.posting(updater_id), k.optin], []),
        )
        if raw is None:
            return None
        claimed = ClaimedResponse(raw=raw, response=decode_response(raw))
        if head != raw or claimed.response.get("reclaimed"):
            return claimed, await self.posting_state(claimed.response["job_id"], claimed.response["user_id"])
        return claimed, PostingState(opted_in=bool(opted_in), posted={})

    async def ack(self, updater_id: str, claimed: ClaimedResponse) -> None:
        await self._redis.lrem(self._keys.posting(updater_id), 1, claimed.raw)

    async def posting_state(self, job_id: str, user_id: str) -> PostingState:
        """Whether the user still wants answers, and what of this job is already posted, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sismember(self._keys.optin, user_id)
            pipe.hgetall(self._keys.posted(job_id))
            opted_in, parts = await pipe.execute()
        return PostingState(opted_in=bool(opted_in), posted={int(i): message_id for i, message_id in parts.items()})

    async def record_posted(self, job_id: str, index: int, message_id: str) -> None:
        key = self._keys.posted(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, str(index), message_id)
            pipe.expire(key, self._posted_ttl_s)
            await pipe.execute()

    async def updater_count(self) -> int:
        """Updaters registered (alive, or dead and not yet reaped): how many share Discord's request budget."""
        return int(await self._redis.scard(self._keys.workers("updater")))

    async def reap(self, updater_id: str) -> int | None:
        """Returns a dead updater's claimed responses to the list; None if it is alive."""
        k = self._keys
        moved = await self._scripts.reap_updater(
            keys=[k.heartbeat("updater", updater_id), k.posting(updater_id), k.workers("updater"), k.response],
            args=[updater_id],
        )
        return None if moved == -1 else int(moved)

    async def release(self, updater_id: str) -> int:
        k = self._keys
        return int(
            await self._scripts.release(
                keys=[k.posting(updater_id), k.response, k.heartbeat("updater", updater_id), k.workers("updater")],
                args=[updater_id, "1"],
            )
        )
