"""Delivering one claimed response: a fresh final answer straight away, anything else under the job's posting lock
(so a partial never lands after the final text, and two updaters never edit one job at once), retried until done."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator

from shared.queues.responses import ClaimedResponse, PostingState, ResponseQueue
from shared.queues.schemas import Response
from shared.runtime.observability.metrics import REPLY_SECONDS
from shared.storage.client import REDIS_DOWN_ERRORS, Backoff
from updater.acknowledgement import Acknowledgements
from updater.errors import TransientPostError
from updater.poster import Poster
from updater.rendering import final_text, what_to_show

log = logging.getLogger(__name__)

LOCK_POLL_S = 0.05
"""How often a final answer asks again for a lock another updater holds (it is held for a few requests)."""
DISCORD_EPOCH_S = 1_420_070_400
"""Discord's epoch (2015-01-01) in Unix seconds: a snowflake id counts milliseconds from it in its top 42 bits."""
SNOWFLAKE_BEFORE_ENQUEUE_S = 86_400.0
"""A message id whose time is further before its job's enqueueing than this is not a real message's (benchmarks)."""


def asked_at(response: Response) -> float:
    """When the user sent the message (its id's snowflake time), else when it was queued."""
    enqueued_at = float(response["enqueued_at"])
    try:
        sent_at = ((int(response["job_id"]) >> 22) / 1000) + DISCORD_EPOCH_S
    except ValueError:
        return enqueued_at
    return sent_at if enqueued_at - SNOWFLAKE_BEFORE_ENQUEUE_S <= sent_at <= enqueued_at + 5 else enqueued_at


def answered(response: Response) -> None:
    """The answer's final text is on Discord: the time the user waited for it."""
    if response["kind"] == "answer":
        REPLY_SECONDS.observe(max(0.0, time.time() - asked_at(response)))


class Delivery:
    def __init__(
        self,
        responses: ResponseQueue,
        poster: Poster,
        acknowledgements: Acknowledgements,
        worker_id: str,
        lock_ttl_s: float,
    ) -> None:
        self.lock_ttl_ms = int(lock_ttl_s * 1000)
        """A dead updater's lock on a job lapses as soon as its work is reaped (a heartbeat TTL); the holder
        extends it every third of that."""
        self.responses = responses
        self.poster = poster
        self.acknowledgements = acknowledgements
        self.worker_id = worker_id

    async def until_done(self, claimed: ClaimedResponse, opted_in: bool | None, stop: asyncio.Event) -> None:
        """Delivering is idempotent (parts recorded, nonces enforced, edits to the same text), so any failure is
        retried; `opted_in` is what the claim read, None when it must be read again."""
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        fresh = bool(claimed.response.get("fresh"))
        while True:
            try:
                await self.deliver(claimed.response, opted_in, fresh=fresh)
                await self.responses.ack(self.worker_id, claimed)
                return
            except (TransientPostError, *REDIS_DOWN_ERRORS) as exc:
                fresh = False  # some parts may have gone out: a retry reads what is there, under the lock
                if stop.is_set():
                    return  # stays in our list; release() hands it back for the next updater
                log.warning("job %s: posting failed (%s); retrying", claimed.response["job_id"], exc)
                await backoff.sleep()

    async def deliver(self, response: Response, opted_in: bool | None, *, fresh: bool) -> None:
        kind, job_id, user_id = response["kind"], response["job_id"], response["user_id"]
        if kind == "started":
            await self.acknowledgements.started(response, bool(opted_in))
            return
        if fresh and opted_in is not None and kind in ("answer", "apology"):
            if not opted_in:
                log.info("job %s: user %s opted out; answer not posted", job_id, user_id)
                return
            self.acknowledgements.shown(response)
            await self.poster.show(response, final_text(response), PostingState(opted_in=True))
            answered(response)
            log.info("job %s of user %s: %s posted", job_id, user_id, kind)
            return
        async with self._locked(response, wait=kind != "partial") as state:
            if state is None:
                return  # a partial another updater is showing: it, or the next partial, shows the newest text
            if kind == "retract" or not state.opted_in:
                if state.posted:
                    await self.poster.retract(response, state)
                elif kind != "retract":
                    log.info("job %s: user %s opted out; %s not posted", job_id, user_id, kind)
                return
            shown = what_to_show(response, state)
            if shown is None:
                return
            self.acknowledgements.shown(response)
            if await self.poster.show(response, shown, state) and shown.final:
                answered(response)
                log.info("job %s of user %s: %s posted", job_id, user_id, kind)

    @contextlib.asynccontextmanager
    async def _locked(self, response: Response, *, wait: bool) -> AsyncIterator[PostingState | None]:
        """Holds the job's posting lock (extended while held); yields None if another updater holds it and
        `wait` is False."""
        job_id, user_id = response["job_id"], response["user_id"]
        while (state := await self.responses.lock(job_id, user_id, self.worker_id, self.lock_ttl_ms)) is None:
            if not wait:
                yield None
                return
            await asyncio.sleep(LOCK_POLL_S)
        keeping = asyncio.create_task(self._keep(job_id))
        try:
            yield state
        finally:
            keeping.cancel()
            await asyncio.gather(keeping, return_exceptions=True)
            with contextlib.suppress(*REDIS_DOWN_ERRORS):
                await self.responses.unlock(job_id, self.worker_id)

    async def _keep(self, job_id: str) -> None:
        while True:
            await asyncio.sleep(self.lock_ttl_ms / 3000)
            with contextlib.suppress(*REDIS_DOWN_ERRORS):
                await self.responses.extend_lock(job_id, self.worker_id, self.lock_ttl_ms)
