"""Completes the jobs that finish in the same generation step in one Redis round trip.

The generation thread hands a step's results to the event loop all at once, so the jobs they end wake up in the
same loop iteration: each adds its completion here, and the first one's flush, which runs right after, stores
them all with one pipelined call (each job's completion is still its own atomic script).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from shared.queues.job_queue import Completion

CompleteMany = Callable[[Sequence[Completion]], Awaitable[list[bool]]]


class BatchedCompletions:
    def __init__(self, complete_many: CompleteMany) -> None:
        self._complete_many = complete_many
        self._pending: list[tuple[Completion, asyncio.Future[bool]]] = []
        self._flushes: set[asyncio.Task[None]] = set()

    async def complete(self, completion: Completion) -> bool:
        """Whether the job was still this runner's to complete (see JobQueue.complete)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._pending.append((completion, future))
        if len(self._pending) == 1:
            # A new task's first step runs in the next loop iteration: after every job woken with this one.
            flush = asyncio.create_task(self._flush())
            self._flushes.add(flush)
            flush.add_done_callback(self._flushes.discard)
        return await future

    async def _flush(self) -> None:
        batch, self._pending = self._pending, []
        try:
            done = await self._complete_many([completion for completion, _ in batch])
        except Exception as exc:  # handed to every waiting job, whose task then fails visibly
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        for (_, future), completed in zip(batch, done, strict=True):
            if not future.done():
                future.set_result(completed)
