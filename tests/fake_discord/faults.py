"""Errors the fake Discord's REST API answers with: Discord's JSON error bodies, and injected faults."""

from __future__ import annotations

import asyncio
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fake_discord.state import Payload

JSON_HEADERS = {"Content-Type": "application/json"}
"""Set explicitly: discord.py parses a body as JSON only when Content-Type is exactly this (no charset)."""

ERROR_CODES = {
    400: (50035, "Invalid Form Body"),
    401: (0, "401: Unauthorized"),
    403: (50013, "Missing Permissions"),
}


def json_response(data: Any, *, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(), headers={**JSON_HEADERS, **(headers or {})})


def no_content() -> web.Response:
    """204 without Content-Type: discord.py would parse the empty body as JSON if it said application/json."""
    return web.Response(status=204)


class ApiError(Exception):
    """Raised by a REST handler to answer with Discord's error body `{code, message[, errors]}`."""

    def __init__(self, status: int, code: int, message: str, *, errors: Payload | None = None) -> None:
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.body: Payload = {"code": code, "message": message, **({"errors": errors} if errors else {})}

    def response(self) -> web.Response:
        return json_response(self.body, status=self.status)


def unknown_channel() -> ApiError:
    return ApiError(404, 10003, "Unknown Channel")


def unknown_message() -> ApiError:
    return ApiError(404, 10008, "Unknown Message")


def invalid_field(name: str, code: str, message: str) -> ApiError:
    return ApiError(400, 50035, "Invalid Form Body", errors={name: {"_errors": [{"code": code, "message": message}]}})


@dataclass
class Fault:
    """An injected failure: the next `times` requests whose method and path match get `status`."""

    method: str
    path: re.Pattern[str]
    status: int
    times: int
    retry_after: float
    global_: bool
    after_handling: bool = False
    """Carry the request out first (the message is created), then answer with the fault, as Discord sometimes does."""

    def matches(self, method: str, path: str, full_path: str) -> bool:
        return method == self.method and bool(self.path.fullmatch(path) or self.path.fullmatch(full_path))

    def response(self, path: str) -> web.Response:
        if self.status == 429:
            # discord.py only retries a 429 that carries `Via` (otherwise it assumes a Cloudflare ban).
            headers = {
                "Via": "1.1 google",
                "Retry-After": str(math.ceil(self.retry_after)),
                "X-RateLimit-Scope": "global" if self.global_ else "user",
                **({"X-RateLimit-Global": "true"} if self.global_ else {}),
            }
            body = {"message": "You are being rate limited.", "retry_after": self.retry_after, "global": self.global_}
            return json_response(body, status=429, headers=headers)
        if self.status == 404:
            return (unknown_message() if "/messages/" in path else unknown_channel()).response()
        if self.status >= 500:
            return json_response({"code": 0, "message": f"{self.status}: Server Error"}, status=self.status)
        code, message = ERROR_CODES.get(self.status, (0, f"{self.status}: Error"))
        return ApiError(self.status, code, message).response()


class FaultPlan:
    """The faults still to be served, first injected first matched, and the answers to hold back."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []
        self.holds = HoldPlan()

    def add(
        self,
        method: str,
        path_regex: str,
        status: int,
        *,
        times: int,
        retry_after: float,
        global_: bool,
        after_handling: bool = False,
    ) -> None:
        fault = Fault(method.upper(), re.compile(path_regex), status, times, retry_after, global_, after_handling)
        self._faults.append(fault)

    def take(self, method: str, path: str, full_path: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, path, full_path):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None


@dataclass
class Hold:
    """A request that was carried out (its message created) but whose answer is held until `release()`.

    `arrived` is set once the request has been handled; the client waits for its answer meanwhile, so a test
    can kill the client in the window between "Discord acted" and "the client knows".
    """

    method: str
    path: re.Pattern[str]
    skip: int
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    released: asyncio.Event = field(default_factory=asyncio.Event)

    def release(self) -> None:
        self.released.set()


class HoldPlan:
    """Holds still to be applied, first added first matched; a hold passes `skip` matching requests first."""

    def __init__(self) -> None:
        self._waiting: list[Hold] = []
        self._applied: list[Hold] = []

    def add(self, method: str, path_regex: str, *, skip: int) -> Hold:
        hold = Hold(method.upper(), re.compile(path_regex), skip)
        self._waiting.append(hold)
        return hold

    def take(self, method: str, path: str, full_path: str) -> Hold | None:
        for hold in self._waiting:
            if hold.method == method and (hold.path.fullmatch(path) or hold.path.fullmatch(full_path)):
                if hold.skip > 0:
                    hold.skip -= 1
                    return None
                self._waiting.remove(hold)
                self._applied.append(hold)
                return hold
        return None

    def release_all(self) -> None:
        for hold in [*self._waiting, *self._applied]:
            hold.release()
