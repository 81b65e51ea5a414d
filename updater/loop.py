"""The updater's Redis loop: claim responses, post several at once within the request budget, acknowledge each."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter

import discord
from redis.asyncio import Redis

from shared.config.settings import Settings
from shared.queues.responses import ClaimedResponse, ResponseQueue
from shared.queues.schemas import decode_response
from shared.runtime.observability.metrics import DISCORD_BUDGET_WAIT_SECONDS
from shared.runtime.rate_limit import RequestBudget
from shared.storage.client import REDIS_DOWN_ERRORS, Backoff
from shared.storage.heartbeat import Heartbeat
from shared.storage.keys import Keys
from updater.acknowledgement import Acknowledgements
from updater.delivery import Delivery
from updater.pacing import Pacing
from updater.poster import Poster

log = logging.getLogger(__name__)


class Updater:
    def __init__(self, settings: Settings, client: discord.Client, redis: Redis, worker_id: str) -> None:
        keys = Keys()
        self.worker_id = worker_id
        self.concurrency = settings.updater_concurrency
        self.requests_per_s = settings.discord_requests_per_s
        self.budget = RequestBudget(settings.discord_requests_per_s, waited=DISCORD_BUDGET_WAIT_SECONDS.observe)
        self.responses = ResponseQueue(redis, keys)
        self.poster = Poster(client, self.responses, Pacing(self.budget))
        self.acknowledgements = Acknowledgements(client, self.poster.pacing, self.responses)
        self.delivery = Delivery(
            self.responses, self.poster, self.acknowledgements, worker_id, settings.heartbeat_ttl_s
        )
        self.heartbeat = Heartbeat(redis, keys, "updater", worker_id, settings.heartbeat_ttl_s)
        self.updaters = 1
        self._posting: set[asyncio.Task[None]] = set()
        # The latest response taken for each lane: the next one of that lane waits for it, so a lane's answers
        # go out in the order they were claimed even though different lanes' go out at once.
        self._latest_of_lane: dict[str, asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(self.concurrency)
        self._holding: Counter[str] = Counter()
        """The payloads of the responses being posted (a payload can be in the list twice: a counter)."""
        self._strays: Counter[str] = Counter()
        """Payloads in our list that no claim handed us, as of the last check."""

    async def run(self, stop: asyncio.Event) -> None:
        await self._beat_and_reap()  # registers this updater, so the budget is shared before the first post
        if self.updaters > 1:
            # The others cut their share at their next heartbeat; posting before then could pass the budget.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.heartbeat.interval_s + 1)
        beating = asyncio.create_task(self._keep_alive(stop))
        try:
            await self._serve(stop)
        finally:
            await asyncio.gather(*self._posting, return_exceptions=True)
            await self.acknowledgements.close()
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            try:
                returned = await self.responses.release(self.worker_id)
            except REDIS_DOWN_ERRORS:
                returned = 0  # left in our list; a peer's reaper returns it once our heartbeat expires
            log.info(
                "updater %s stopped: posted=%d messages, returned=%d responses",
                self.worker_id,
                self.poster.posted_messages,
                returned,
            )

    async def _serve(self, stop: asyncio.Event) -> None:
        """Claims a response whenever fewer than `concurrency` are being posted, and posts it in a task."""
        backoff = Backoff()
        while not stop.is_set():
            await self._slots.acquire()
            try:
                claim = await self.responses.claim_with_consent(self.worker_id)
            except REDIS_DOWN_ERRORS as exc:
                self._slots.release()
                log.warning("Redis unreachable (%s); retrying", type(exc).__name__)
                await backoff.sleep()
                continue
            backoff.reset()
            if claim is None:
                self._slots.release()
                continue
            self._holding[claim[0].raw] += 1
            self._start_posting(*claim, stop)
            # Let the new task send its first request before we send the next claim: keeps that off its path.
            await asyncio.sleep(0)

    def _start_posting(self, claimed: ClaimedResponse, opted_in: bool | None, stop: asyncio.Event) -> None:
        """Posts in a task holding one of `_slots` (taken by the caller, released when it ends), after the lane's
        earlier responses; the caller has counted `claimed` in `_holding`."""
        response = claimed.response
        # A "started" notice only acknowledges: it need not wait for the lane's earlier answers.
        lane = None if response["kind"] == "started" else response.get("lane") or response["user_id"]
        previous = self._latest_of_lane.get(lane) if lane else None
        task = asyncio.create_task(self._post_in_turn(claimed, opted_in, previous, stop))
        if lane:
            self._latest_of_lane[lane] = task
        self._posting.add(task)

        def finished(done: asyncio.Task[None]) -> None:
            self._slots.release()
            self._posting.discard(done)
            self._holding[claimed.raw] -= 1
            if self._holding[claimed.raw] <= 0:
                del self._holding[claimed.raw]
            if lane and self._latest_of_lane.get(lane) is done:
                del self._latest_of_lane[lane]
            if not done.cancelled() and (exc := done.exception()) is not None:
                log.error("job %s: posting crashed", response["job_id"], exc_info=exc)

        task.add_done_callback(finished)

    async def _post_in_turn(
        self,
        claimed: ClaimedResponse,
        opted_in: bool | None,
        previous: asyncio.Task[None] | None,
        stop: asyncio.Event,
    ) -> None:
        if previous is not None:
            await asyncio.wait([previous])
            opted_in = None  # read when claimed: the user may have opted out since
        await self.delivery.until_done(claimed, opted_in, stop)

    async def _share_budget(self) -> None:
        """Splits the request budget among the registered updaters: DISCORD_REQUESTS_PER_S is for all of them.

        Each updater recounts at every heartbeat; one that has just started waits a heartbeat before posting,
        so that the others have cut their share by then.
        """
        self.updaters = max(1, await self.responses.updater_count())
        share = self.requests_per_s / self.updaters
        if abs(share - self.budget.per_s) > 1e-9:
            log.info("updater %s: Discord request budget now %.1f/s", self.worker_id, share)
            self.budget.set_rate(share)

    async def _keep_alive(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await asyncio.sleep(self.heartbeat.interval_s)
            await self._beat_and_reap()
            if not stop.is_set():
                with contextlib.suppress(*REDIS_DOWN_ERRORS):
                    await self.adopt_strays(stop)

    async def adopt_strays(self, stop: asyncio.Event) -> None:
        """Posts the responses in this updater's list that no claim handed it.

        A claim whose reply is lost (Redis stopping, or the connection dropping, after it moved the response)
        leaves it in our list, where no reaper looks while we are alive: the runner's answer would never be
        posted. One still unknown a heartbeat later is such a stray (a reply takes milliseconds); posting is
        idempotent, so it is posted as if just claimed, its consent read again.
        """
        unknown = Counter(await self.responses.held(self.worker_id)) - self._holding
        strays, self._strays = unknown & self._strays, unknown - self._strays
        if not strays:
            return
        log.warning(
            "updater %s: %d responses in its list were never handed to it (a lost reply); posting them",
            self.worker_id,
            strays.total(),
        )
        self._holding.update(strays)
        # In a task: waiting here for a free slot would hold up the heartbeat.
        adopting = asyncio.create_task(self._post_strays(list(strays.elements()), stop))
        self._posting.add(adopting)
        adopting.add_done_callback(self._posting.discard)

    async def _post_strays(self, raws: list[str], stop: asyncio.Event) -> None:
        for raw in raws:
            await self._slots.acquire()
            self._start_posting(ClaimedResponse(raw=raw, response=decode_response(raw)), None, stop)

    async def _beat_and_reap(self) -> None:
        try:
            await self.heartbeat.beat_and_reap(self._reap)
            await self._share_budget()
        except REDIS_DOWN_ERRORS as exc:
            log.warning("Redis unreachable during heartbeat (%s)", type(exc).__name__)

    async def _reap(self, peer: str) -> None:
        returned = await self.responses.reap(peer)
        if returned is not None:
            log.warning("updater %s is gone: returned %d responses", peer, returned)
