"""Where a user's waiting messages stand (`!status`): how many messages are ahead of theirs in the queue, and how
fast runners have been answering, from which a rough wait follows."""

from __future__ import annotations

import json
from dataclasses import dataclass

from redis.asyncio import Redis

from shared.conversation_ids import is_shared
from shared.keys import Keys
from shared.schemas import decode_job


@dataclass(frozen=True)
class LaneStatus:
    """One lane the user has messages in: theirs, or a shared thread's."""

    shared: bool
    answering: bool
    """Its current message (maybe another speaker's, in a thread) is being answered now."""
    ahead_in_queue: int
    """Messages of other lanes the queue holds before the lane's current one (0 when it is being answered)."""
    mine_waiting: int
    """The user's messages in the lane that wait for their turn (the current one included if it is theirs)."""
    before_mine: int
    """Messages of the lane answered before the user's first waiting one (in a thread: other speakers')."""


@dataclass(frozen=True)
class WaitingStatus:
    lanes: list[LaneStatus]
    answered_last_minute: int
    """Answers the live runners completed in the last minute, together."""

    def rough_wait_s(self, lane: LaneStatus) -> float | None:
        """Seconds until the user's first waiting message of the lane is answered, at the recent pace."""
        if not self.answered_last_minute:
            return None
        before = lane.ahead_in_queue + lane.before_mine + (0 if lane.answering else 1)
        return 60.0 * before / self.answered_last_minute


class WaitingStatusReader:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys

    async def status_of(self, user_id: str) -> WaitingStatus:
        k = self._keys
        shared_lanes = [c for c in await self._redis.smembers(k.conversations(user_id)) if is_shared(c)]
        lanes = [user_id, *sorted(shared_lanes)]
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.lrange(k.query, 0, -1)
            for lane in lanes:
                pipe.get(k.inflight(lane))
                pipe.lrange(k.pending(lane), 0, -1)
            queue, *per_lane = await pipe.execute()
        # The queue is claimed from its right end: what sits to the right of a job goes first.
        queued = [decode_job(raw) for raw in reversed(queue)]
        position = {job["id"]: index for index, job in enumerate(queued)}
        author = {job["id"]: job["user_id"] for job in queued}
        found = []
        for lane, current, pending in zip(lanes, per_lane[0::2], per_lane[1::2], strict=True):
            if current is None:
                continue
            waiting = [decode_job(raw) for raw in pending]
            mine = [i for i, job in enumerate(waiting) if job["user_id"] == user_id]
            current_is_mine = author.get(current) == user_id
            if not mine and not current_is_mine and lane != user_id:
                continue
            answering = current not in position
            found.append(
                LaneStatus(
                    shared=lane != user_id,
                    answering=answering,
                    ahead_in_queue=0 if answering else position[current],
                    mine_waiting=len(mine) + int(current_is_mine),
                    before_mine=0 if current_is_mine or not mine else mine[0] + 1,
                )
            )
        return WaitingStatus(found, await self._answered_last_minute())

    async def _answered_last_minute(self) -> int:
        k = self._keys
        runners = sorted(await self._redis.smembers(k.workers("runner")))
        if not runners:
            return 0
        total = 0
        for value in await self._redis.mget([k.heartbeat("runner", runner) for runner in runners]):
            try:
                total += int(json.loads(value or "{}").get("answered_last_minute", 0))
            except (ValueError, AttributeError):
                continue  # a runner of an older version beats "1"
        return total
