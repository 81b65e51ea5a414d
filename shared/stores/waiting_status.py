"""Where a user's waiting messages stand (`!status`): how many messages are ahead of theirs on their model's queue,
and how fast that model's runners have been answering, from which a rough wait follows."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from redis.asyncio import Redis

from shared.queues.conversation_ids import is_shared
from shared.queues.schemas import decode_job
from shared.queues.served_models import KnownModels, live_runner_beats
from shared.storage.keys import Keys


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
    model: str | None = None
    """The model whose queue its current message is on (None while it is being answered, or for a message queued
    by an older version, which names none)."""


@dataclass(frozen=True)
class WaitingStatus:
    lanes: list[LaneStatus]
    answered_last_minute: int
    """Answers the live runners completed in the last minute, together."""
    answered_per_model: dict[str, int] = field(default_factory=dict)
    """The same, for each model that live runners serve (0 for a model served by runners idle for a minute)."""

    def pace(self, lane: LaneStatus) -> int:
        """Answers a minute of the runners that will answer the lane's current message."""
        return self.answered_last_minute if lane.model is None else self.answered_per_model.get(lane.model, 0)

    def served(self, lane: LaneStatus) -> bool:
        """Whether a live runner serves the model the lane's current message waits for."""
        return lane.model is None or lane.model in self.answered_per_model

    def rough_wait_s(self, lane: LaneStatus) -> float | None:
        """Seconds until the user's first waiting message of the lane is answered, at the recent pace."""
        pace = self.pace(lane)
        if not pace:
            return None
        before = lane.ahead_in_queue + lane.before_mine + (0 if lane.answering else 1)
        return 60.0 * before / pace


class WaitingStatusReader:
    def __init__(self, redis: Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._models = KnownModels(redis, keys)

    async def status_of(self, user_id: str) -> WaitingStatus:
        k = self._keys
        shared_lanes = [c for c in await self._redis.smembers(k.conversations(user_id)) if is_shared(c)]
        lanes = [user_id, *sorted(shared_lanes)]
        models = await self._models.refresh()
        async with self._redis.pipeline(transaction=False) as pipe:
            pipe.lrange(k.legacy_query, 0, -1)
            for model in models:
                pipe.lrange(k.query(model), 0, -1)
            for lane in lanes:
                pipe.get(k.inflight(lane))
                pipe.lrange(k.pending(lane), 0, -1)
            results = await pipe.execute()
        queues, per_lane = results[: len(models) + 1], results[len(models) + 1 :]
        position: dict[str, int] = {}
        author: dict[str, str] = {}
        model_of: dict[str, str | None] = {}
        for queue_model, queue in zip((None, *models), queues, strict=True):
            # A queue is claimed from its right end: what sits to the right of a job goes first.
            for index, job in enumerate(decode_job(raw) for raw in reversed(queue)):
                position[job["id"]], author[job["id"]], model_of[job["id"]] = index, job["user_id"], queue_model
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
                    model=model_of.get(current),
                )
            )
        per_model: Counter[str] = Counter()
        total = 0
        for beat in await live_runner_beats(self._redis, k):
            answered = beat.get("answered_last_minute", 0)
            answered = answered if isinstance(answered, int) else 0
            total += answered
            if isinstance(beat.get("model"), str):
                per_model[beat["model"]] += answered
        return WaitingStatus(found, total, dict(per_model))
