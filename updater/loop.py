"""The updater's Redis loop: claim a response, post it, acknowledge; heartbeat and reap dead updaters."""

from __future__ import annotations

import asyncio
import logging

import discord
from redis.asyncio import Redis

from shared.consent import ConsentRegistry
from shared.heartbeat import Heartbeat
from shared.keys import Keys
from shared.redis_client import REDIS_DOWN_ERRORS, Backoff
from shared.response_queue import ClaimedResponse, ResponseQueue
from shared.settings import Settings
from updater.poster import Poster, TransientPostError

log = logging.getLogger(__name__)


class Updater:
    def __init__(self, settings: Settings, client: discord.Client, redis: Redis, worker_id: str) -> None:
        keys = Keys()
        self.worker_id = worker_id
        self.responses = ResponseQueue(redis, keys)
        self.poster = Poster(client, self.responses, ConsentRegistry(redis, keys))
        self.heartbeat = Heartbeat(redis, keys, "updater", worker_id, settings.heartbeat_ttl_s)

    async def run(self, stop: asyncio.Event) -> None:
        beating = asyncio.create_task(self._keep_alive(stop))
        try:
            await self._serve(stop)
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            try:
                returned = await self.responses.release(self.worker_id)
            except REDIS_DOWN_ERRORS:
                returned = 0  # left in our list; a peer's reaper returns it once our heartbeat expires
            log.info("updater %s stopped: posted=%d messages, returned=%d responses",
                     self.worker_id, self.poster.posted_messages, returned)

    async def _serve(self, stop: asyncio.Event) -> None:
        backoff = Backoff()
        while not stop.is_set():
            try:
                claimed = await self.responses.claim(self.worker_id)
                if claimed is not None:
                    await self._post_until_done(claimed, stop)
            except REDIS_DOWN_ERRORS as exc:
                log.warning("Redis unreachable (%s); retrying", type(exc).__name__)
                await backoff.sleep()
                continue
            backoff.reset()

    async def _post_until_done(self, claimed: ClaimedResponse, stop: asyncio.Event) -> None:
        backoff = Backoff(base_s=0.5, cap_s=30.0)
        while True:
            try:
                await self.poster.post(claimed)
                break
            except TransientPostError as exc:
                if stop.is_set():
                    return  # stays in our list; release() hands it back for the next updater
                log.warning("job %s: posting failed (%s); retrying", claimed.response["job_id"], exc)
                await backoff.sleep()
        await self.responses.ack(self.worker_id, claimed)

    async def _keep_alive(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.heartbeat.beat()
                for peer in await self.heartbeat.silent_peers():
                    returned = await self.responses.reap(peer)
                    if returned is not None:
                        log.warning("updater %s is gone: returned %d responses", peer, returned)
            except REDIS_DOWN_ERRORS as exc:
                log.warning("Redis unreachable during heartbeat (%s)", type(exc).__name__)
            await asyncio.sleep(self.heartbeat.interval_s)
