"""Reading a process's /metrics and /healthz as Prometheus and a compose healthcheck would."""

from __future__ import annotations

import asyncio
import time
import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _get(port: int, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


async def metrics_text(port: int) -> str:
    status, text = await asyncio.to_thread(_get, port, "/metrics")
    assert status == 200, text
    return text


async def scrape(port: int) -> Series:
    """Every sample of the process's /metrics: (name, labels) -> value."""
    series: Series = {}
    for family in text_string_to_metric_families(await metrics_text(port)):
        for sample in family.samples:
            series[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return series


def value(series: Series, name: str, **labels: str) -> float | None:
    return series.get((name, frozenset(labels.items())))


async def healthz(port: int) -> tuple[int, str]:
    """(status, body) of GET /healthz; (0, reason) while nothing listens on the port yet."""
    try:
        return await asyncio.to_thread(_get, port, "/healthz")
    except (urllib.error.URLError, ConnectionError) as exc:
        return 0, str(exc)


async def wait_health(port: int, status: int, timeout: float = 30.0, contains: str = "") -> str:
    """Polls /healthz until it answers `status` (with `contains` in its body); returns the body."""
    deadline = time.monotonic() + timeout
    seen: tuple[int, str] = (0, "")
    while time.monotonic() < deadline:
        seen = await healthz(port)
        if seen[0] == status and contains in seen[1]:
            return seen[1]
        await asyncio.sleep(0.05)
    raise AssertionError(f"/healthz on {port} never answered {status} {contains!r}; last: {seen}")
