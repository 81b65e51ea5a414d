"""Errors the fake Discord's REST API answers with: Discord's JSON error bodies, and injected faults."""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
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
    """The faults still to be served, first injected first matched."""

    def __init__(self) -> None:
        self._faults: list[Fault] = []

    def add(self, method: str, path_regex: str, status: int, *, times: int, retry_after: float, global_: bool) -> None:
        fault = Fault(method.upper(), re.compile(path_regex), status, times, retry_after, global_)
        self._faults.append(fault)

    def take(self, method: str, path: str, full_path: str) -> Fault | None:
        for fault in self._faults:
            if fault.matches(method, path, full_path):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        return None
