"""The one small HTTP server of each process: `GET /metrics` (Prometheus text) and `GET /healthz` (200, or 503 with
a one-line reason), on METRICS_PORT.

Plain asyncio rather than a web framework: the runner's image has no aiohttp, two read-only routes need none, and
answering from the process's own event loop means a loop that is stuck cannot answer healthy.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

log = logging.getLogger(__name__)

HealthCheck = Callable[[], Awaitable[str | None]]
"""Says what stops the process from doing its job now (one line), or None when nothing does."""

CHECK_TIMEOUT_S = 2.0
"""Longest one health check may take; past it the check itself is the reason (e.g. Redis that does not answer)."""
REQUEST_TIMEOUT_S = 5.0
"""A client that has not sent its request line and headers by then is dropped."""
MAX_HEADER_LINES = 100


class Health:
    """The process's named checks, run in order at each `GET /healthz`; the first that fails is the reason."""

    def __init__(self) -> None:
        self._checks: list[tuple[str, HealthCheck]] = []

    def add(self, name: str, check: HealthCheck) -> None:
        self._checks.append((name, check))

    async def problem(self) -> str | None:
        for name, check in self._checks:
            try:
                reason = await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
            except TimeoutError:
                reason = f"{name} did not answer within {CHECK_TIMEOUT_S:g} s"
            if reason is not None:
                return reason
        return None


class ObservabilityServer:
    def __init__(self, registry: CollectorRegistry, health: Health, port: int, host: str = "0.0.0.0") -> None:
        self.registry = registry
        self.health = health
        self.port = port
        self.host = host
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, self.host, self.port)
        log.info("serving /metrics and /healthz on port %d", self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            path = await asyncio.wait_for(_request_path(reader), REQUEST_TIMEOUT_S)
            status, content_type, body = await self._answer(path)
            head = (
                f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n"
            )
            writer.write(head.encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError, ValueError):
            pass  # a scraper that went away or spoke no HTTP: nothing to answer
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _answer(self, path: str | None) -> tuple[str, str, bytes]:
        if path == "/metrics":
            return "200 OK", CONTENT_TYPE_LATEST, generate_latest(self.registry)
        if path == "/healthz":
            problem = await self.health.problem()
            if problem is None:
                return "200 OK", "text/plain; charset=utf-8", b"ok\n"
            return "503 Service Unavailable", "text/plain; charset=utf-8", f"{problem}\n".encode()
        if path is None:
            return "405 Method Not Allowed", "text/plain; charset=utf-8", b"only GET\n"
        return "404 Not Found", "text/plain; charset=utf-8", b"/metrics or /healthz\n"


async def _request_path(reader: asyncio.StreamReader) -> str | None:
    """The path of a GET (query string dropped), None for another method; reads the headers to their end."""
    request_line = (await reader.readline()).decode("latin-1").split()
    if len(request_line) != 3:
        raise ValueError("not an HTTP request")
    for _ in range(MAX_HEADER_LINES):
        if (await reader.readline()) in (b"\r\n", b"\n", b""):
            break
    method, target, _ = request_line
    return target.split("?", 1)[0] if method == "GET" else None


@contextlib.asynccontextmanager
async def serving(registry: CollectorRegistry, health: Health, port: int) -> AsyncIterator[None]:
    """Serves both routes for the duration of the block when `port` is set (METRICS_PORT), else does nothing."""
    if not port:
        yield
        return
    server = ObservabilityServer(registry, health, port)
    await server.start()
    try:
        yield
    finally:
        await server.close()
