"""The response side: updaters claim responses by atomic move, post or edit a job's messages under its posting
lock (or, for a response nothing of which can be on Discord yet, without it), record each part, acknowledge."""

from __future__ import annotations

from dataclasses import dataclass, field

from redis.asyncio import Redis

from shared.config import defaults
from shared.queues.schemas import Response, decode_response
from shared.storage.keys import Keys
from shared.storage.scripts import Scripts, command_then_script

INTENT_PREFIX = "w"
"""posted:{job} field "w<index>": the creation of an interaction follow-up part was started (a webhook takes no
nonce, so a retry after a crash looks for the message before creating it again)."""

FINAL_FIELD = "final"
"""Set in posted:{job} once the final text is on Discord: a partial read afterwards is never shown."""


@dataclass(frozen=True)
class ClaimedResponse:
    raw: str
    response: Response


@dataclass(frozen=True)
class PostingState:
    """What an updater knows of a job when it posts: consent, the parts on Discord, and the newest partial."""

    opted_in: bool
    posted: dict[int, str] = field(default_factory=dict)
    """Parts of the job's text on Discord: part index -> Discord message id."""
    digests: dict[int, str] = field(default_factory=dict)
    """Part index -> digest of the text that part shows now (edits are sent only where it changes)."""
    final: bool = False
    partial: str = ""
    """The newest partial text (stream:{job}), read with the lock; empty once the job completed."""
    intents: frozenset[int] = frozenset()
    """Interaction follow-up parts whose creation was started (see INTENT_PREFIX)."""


def parse_posted(flat_or_mapping: list[str] | dict[str, str], opted_in: bool, partial: str = "") -> PostingState:
    items = (
        flat_or_mapping.items()
        if isinstance(flat_or_mapping, dict)
        else zip(flat_or_mapping[::2], flat_or_mapping[1::2], strict=True)
    )
    posted, digests, final, intents = {}, {}, False, set()
    for name, value in items:
        if name == FINAL_FIELD:
            final = True
        elif name.startswith(INTENT_PREFIX):
            intents.add(int(name[1:]))
        elif name.startswith("d"):
            digests[int(name[1:])] = value
        else:
            posted[int(name)] = value
    return PostingState(opted_in, posted, digests, final, partial, frozenset(intents))


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

    async def claim_with_consent(
        self, updater_id: str, timeout_s: float = defaults.DEFAULT_BLOCK_TIMEOUT_S
    ) -> tuple[ClaimedResponse, bool] | None:
        """claim(), and whether its user is still opted in, in one round trip (the claim and a script pipelined).

        That is all a `fresh` response needs; the others read the rest of their state with their posting lock.
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
        if head != raw:  # only this updater adds to its list, so this is not expected; checked all the same
            opted_in = await self._redis.sismember(k.optin, claimed.response["user_id"])
        return claimed, bool(opted_in)

    async def held(self, updater_id: str) -> list[str]:
        """The payloads in this updater's list, as Redis has them."""
        return list(await self._redis.lrange(self._keys.posting(updater_id), 0, -1))

    async def ack(self, updater_id: str, claimed: ClaimedResponse) -> None:
        await self._redis.lrem(self._keys.posting(updater_id), 1, claimed.raw)

    async def lock(self, job_id: str, user_id: str, owner: str, ttl_ms: int) -> PostingState | None:
        """Takes the job's posting lock and reads its state with it; None while another updater holds it."""
        k = self._keys
        taken = await self._scripts.take_posting(
            keys=[k.posting_lock(job_id), k.posted(job_id), k.optin, k.stream(job_id)], args=[owner, ttl_ms, user_id]
        )
        if not int(taken[0]):
            return None
        return parse_posted(taken[2], opted_in=bool(taken[1]), partial=taken[3])

    async def extend_lock(self, job_id: str, owner: str, ttl_ms: int) -> bool:
        return bool(
            await self._scripts.posting_lock(keys=[self._keys.posting_lock(job_id)], args=[owner, "extend", ttl_ms])
        )

    async def unlock(self, job_id: str, owner: str) -> None:
        await self._scripts.posting_lock(keys=[self._keys.posting_lock(job_id)], args=[owner, "release", 0])

    async def posting_state(self, job_id: str, user_id: str) -> PostingState:
        """Whether the user still wants answers, and what of this job is already posted, in one round trip."""
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.sismember(self._keys.optin, user_id)
            pipe.hgetall(self._keys.posted(job_id))
            opted_in, parts = await pipe.execute()
        return parse_posted(parts, opted_in=bool(opted_in))

    async def record_posted(self, job_id: str, index: int, message_id: str, digest: str = "") -> None:
        """Records a part created or edited: its message id and the digest of the text it shows."""
        key = self._keys.posted(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={str(index): message_id, f"d{index}": digest})
            pipe.expire(key, self._posted_ttl_s)
            await pipe.execute()

    async def record_intent(self, job_id: str, index: int) -> None:
        """Before creating an interaction follow-up part: recorded first, so a retry knows to look for it."""
        key = self._keys.posted(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hset(key, f"{INTENT_PREFIX}{index}", "1")
            pipe.expire(key, self._posted_ttl_s)
            await pipe.execute()

    async def record_final(self, job_id: str, dropped: list[int]) -> None:
        """Marks the final text as shown (no partial may follow) and forgets the parts deleted as extra."""
        key = self._keys.posted(job_id)
        async with self._redis.pipeline(transaction=True) as pipe:
            if dropped:
                pipe.hdel(key, *(name for index in dropped for name in (str(index), f"d{index}")))
            pipe.hset(key, FINAL_FIELD, "1")
            pipe.expire(key, self._posted_ttl_s)
            await pipe.execute()

    async def forget_posted(self, job_id: str) -> None:
        """After a retraction: nothing of the job is on Discord any more, and nothing of it is kept."""
        await self._redis.delete(self._keys.posted(job_id), self._keys.stream(job_id))

    async def has_posted(self, job_id: str) -> bool:
        return bool(await self._redis.exists(self._keys.posted(job_id)))

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
                args=[updater_id],
            )
        )
