"""Steps an engine in a thread of its own, so that the runner's event loop never waits on the model.

The event loop submits requests at any time and awaits each one's result; the thread hands new requests to the
engine between two steps (that is how a job joins a running batch) and resolves each future as its job ends.
It is also the only thread that does torch work: the engine is loaded and checked on it (`call`) before it
generates, because every thread that runs torch keeps its own OpenMP pool, and a pool left behind by a loading
thread competes with generation for the cores.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from runner.engines.protocol import Engine, GenerationRequest, GenerationResult

log = logging.getLogger(__name__)

_STOP = None
"""Put in the inbox to make the thread return once the engine has finished its work."""

T = TypeVar("T")


@dataclass(frozen=True)
class _Call:
    """Work to run on the thread between two steps (loading, checking or closing the engine), and its future."""

    fn: Callable[[], Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


_Waiter = tuple[asyncio.AbstractEventLoop, "asyncio.Future[GenerationResult]"]
_Resolved = list[tuple["asyncio.Future[GenerationResult]", GenerationResult]]


class GenerationThread:
    """The one thread that steps the engine; `submit` and `stop` are called from the event loop."""

    def __init__(
        self,
        engine: Engine | None = None,
        *,
        stream_interval_s: float = 0.0,
        on_partials: Callable[[dict[str, str]], None] | None = None,
    ) -> None:
        self.engine = engine
        """None until `call` has loaded one; the thread generates only once it is set."""
        self.stream_interval_s = stream_interval_s
        self._on_partials = on_partials
        """Called in the event loop with the partial texts that changed since the last call (job id -> text)."""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._partials_sent: dict[str, str] = {}
        self._partials_at = 0.0
        self._inbox: queue.SimpleQueue[list[tuple[GenerationRequest, _Waiter]] | _Call | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="generation", daemon=True)
        self._crash: Exception | None = None
        self._crash_lock = threading.Lock()
        """Makes "not crashed, so queue it" one step, so no request slips in after the crash drained the inbox."""

    def use(
        self, engine: Engine, *, stream_interval_s: float, on_partials: Callable[[dict[str, str]], None] | None
    ) -> None:
        """The engine to step (loaded by `call`, on this thread), and where its partial texts go; before any submit."""
        self.engine = engine
        self.stream_interval_s = stream_interval_s
        self._on_partials = on_partials

    def start(self) -> None:
        """Starts the thread, unless it runs already (it is started early to load the engine)."""
        if self._thread.ident is None:
            self._loop = asyncio.get_running_loop()
            self._thread.start()

    async def call(self, fn: Callable[[], T]) -> T:
        """Runs `fn` on the thread (between two steps) and returns what it returned; starts the thread if needed."""
        self.start()
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._crash_lock:
            if self._crash is not None:
                raise RuntimeError(f"the generation thread has stopped: {self._crash!r}")
            self._inbox.put(_Call(fn, loop, future))
        return await future

    def submit(self, requests: Sequence[GenerationRequest]) -> list[asyncio.Future[GenerationResult]]:
        """Each request's result, once the engine has answered it; call from the event loop.

        Requests submitted together reach the engine together, so they join the batch in the same step.
        """
        loop = asyncio.get_running_loop()
        futures: list[asyncio.Future[GenerationResult]] = [loop.create_future() for _ in requests]
        with self._crash_lock:
            if self._crash is None:
                self._inbox.put([(request, (loop, future)) for request, future in zip(requests, futures, strict=True)])
            else:
                for future in futures:
                    future.set_exception(RuntimeError(f"the generation thread has stopped: {self._crash!r}"))
        return futures

    async def stop(self) -> None:
        """Lets the engine finish what it was given, then ends the thread (if it ever started)."""
        if self._thread.ident is None:
            return
        self._inbox.put(_STOP)
        await asyncio.to_thread(self._thread.join)

    def _run(self) -> None:
        waiters: dict[str, deque[_Waiter]] = {}
        try:
            self._serve(waiters)
        except Exception as exc:
            # Not one job's failure (the engine turns those into failed results) but a broken engine: every
            # caller hears of it, and the runner stops, rather than waiting forever on a thread that is gone.
            log.exception("generation thread crashed")
            with self._crash_lock:
                self._crash = exc
                while not self._inbox.empty():
                    item = self._inbox.get_nowait()
                    if isinstance(item, _Call):
                        item.loop.call_soon_threadsafe(_reject, item.future, exc)
                        continue
                    for request, waiter in item or ():
                        waiters.setdefault(request.job_id, deque()).append(waiter)
            for pending in waiters.values():
                for loop, future in pending:
                    loop.call_soon_threadsafe(_reject, future, exc)

    def _busy(self) -> int:
        return self.engine.unfinished if self.engine is not None else 0

    def _serve(self, waiters: dict[str, deque[_Waiter]]) -> None:
        stopping = False
        while not stopping or self._busy():
            new: list[GenerationRequest] = []
            # Blocks only while the engine has nothing to do; otherwise takes what arrived since the last step.
            block = not self._busy() and not stopping
            while True:
                try:
                    item = self._inbox.get(block=block)
                except queue.Empty:
                    break
                block = False
                if item is _STOP:
                    stopping = True
                    continue
                if isinstance(item, _Call):
                    _run_call(item)
                    continue
                for request, waiter in item:
                    waiters.setdefault(request.job_id, deque()).append(waiter)
                    new.append(request)
            engine = self.engine
            if engine is None:
                if new:
                    raise RuntimeError("requests reached the generation thread before an engine was loaded")
                continue
            if new:
                engine.add(new)
            ready: dict[asyncio.AbstractEventLoop, _Resolved] = {}
            for result in engine.step() if engine.unfinished else ():
                pending = waiters[result.job_id]
                loop, future = pending.popleft()
                if not pending:
                    del waiters[result.job_id]
                ready.setdefault(loop, []).append((future, result))
            # One callback per step, so the jobs that ended together wake up together (and complete together).
            for loop, resolved in ready.items():
                loop.call_soon_threadsafe(_resolve, resolved)
            self._share_partials()

    def _share_partials(self) -> None:
        """At most every `stream_interval_s`, hands the event loop the partial texts that changed."""
        if self._on_partials is None or self._loop is None or self.stream_interval_s <= 0 or self.engine is None:
            return
        now = time.monotonic()
        if now - self._partials_at < self.stream_interval_s:
            return
        self._partials_at = now
        texts = self.engine.partial_texts()
        changed = {job_id: text for job_id, text in texts.items() if self._partials_sent.get(job_id) != text}
        self._partials_sent = texts
        if changed:
            self._loop.call_soon_threadsafe(self._on_partials, changed)


def _run_call(call: _Call) -> None:
    """Runs a call's work; its exception goes to its caller, not to the thread (a model that will not load is the
    caller's to report, and leaves the thread able to run the next call)."""
    try:
        result = call.fn()
    except Exception as exc:
        call.loop.call_soon_threadsafe(_settle, call.future, None, exc)
    else:
        call.loop.call_soon_threadsafe(_settle, call.future, result, None)


def _settle(future: asyncio.Future[Any], result: object, exc: BaseException | None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _resolve(resolved: _Resolved) -> None:
    for future, result in resolved:
        if not future.done():  # its caller may have been cancelled meanwhile
            future.set_result(result)


def _reject(future: asyncio.Future[Any], exc: Exception) -> None:
    if not future.done():
        future.set_exception(RuntimeError(f"the generation thread has stopped: {exc!r}"))
