"""The fake Discord REST API (/api/v10): authentication, rate-limit headers, faults, and the routes to log in."""

from __future__ import annotations

import time
import zlib
from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web

from tests.fake_discord.commands import CommandRoutes, CommandStore
from tests.fake_discord.faults import ApiError, FaultPlan, json_response
from tests.fake_discord.gateway import Gateway
from tests.fake_discord.interactions import CallbackRoute, InteractionStore
from tests.fake_discord.journal import Journal
from tests.fake_discord.messages import MessageRoutes, channel_of
from tests.fake_discord.ratelimit import ChannelMessageLimit
from tests.fake_discord.state import World
from tests.fake_discord.threads import ThreadRoutes
from tests.fake_discord.webhooks import WebhookRoutes

API_PREFIX = "/api/v10"
RATE_LIMIT = 50
"""Requests per bucket the fake advertises; it never runs out, so clients never wait ahead of time."""

TOKEN_AUTHENTICATED = ("/interactions/", "/webhooks/")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _rate_limit_headers(method: str, path: str) -> dict[str, str]:
    # One bucket per route shape, like Discord's per-route buckets; ids are the "major parameters".
    shape = "/".join("{id}" if part.isdigit() else part for part in path.split("/"))
    return {
        "X-RateLimit-Limit": str(RATE_LIMIT),
        "X-RateLimit-Remaining": str(RATE_LIMIT - 1),
        "X-RateLimit-Reset": f"{time.time() + 1:.3f}",
        "X-RateLimit-Reset-After": "1.000",
        "X-RateLimit-Bucket": f"{zlib.crc32(f'{method} {shape}'.encode()):08x}",
    }


class RestApi:
    """The REST application: every route group over the shared world, behind one middleware for auth and faults."""

    def __init__(
        self,
        world: World,
        journal: Journal,
        gateway: Gateway,
        token: str,
        faults: FaultPlan,
        *,
        commands: CommandStore,
        interactions: InteractionStore,
    ) -> None:
        self._world = world
        self._commands = commands
        self._interactions = interactions
        self._journal = journal
        self._gateway = gateway
        self._token = token
        self._faults = faults
        self.channel_limit: ChannelMessageLimit | None = None
        """Discord's per-channel limit on sends and edits, when a test switches it on."""

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware])
        app.router.add_get("/users/@me", self._get_me)
        app.router.add_get("/oauth2/applications/@me", self._application_info)
        app.router.add_post("/users/@me/channels", self._create_dm)
        app.router.add_get("/users/{user_id}", self._get_user)
        app.router.add_get("/gateway", self._get_gateway)
        app.router.add_get("/gateway/bot", self._get_gateway)
        app.router.add_get("/channels/{channel_id}", self._get_channel)
        app.router.add_get("/guilds/{guild_id}/members/{user_id}", self._get_member)
        MessageRoutes(self._world, self._journal, self._gateway).add_routes(app.router)
        ThreadRoutes(self._world, self._gateway).add_routes(app.router)
        CommandRoutes(self._world, self._journal, self._commands).add_routes(app.router)
        CallbackRoute(self._world, self._journal, self._gateway, self._interactions).add_routes(app.router)
        WebhookRoutes(self._world, self._journal, self._gateway, self._interactions).add_routes(app.router)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        method, full_path = request.method, request.path
        path = full_path.removeprefix(API_PREFIX)
        response: web.StreamResponse
        # Interaction callbacks and webhooks authenticate by the token in their path, not the bot's.
        token_in_path = path.startswith(TOKEN_AUTHENTICATED)
        if not token_in_path and request.headers.get(hdrs.AUTHORIZATION) != f"Bot {self._token}":
            response = ApiError(401, 0, "401: Unauthorized").response()
        elif (fault := self._faults.take(method, path, full_path)) is not None and not fault.after_handling:
            response = fault.response(path)
        else:
            response = await self._handle(request, handler, method, path)
            if fault is not None:
                response = fault.response(path)
        self._journal.requests.append((method, path, response.status))
        self._journal.request_times.append(time.monotonic())
        self._journal.notify()
        if (hold := self._faults.holds.take(method, path, full_path)) is not None:
            hold.arrived.set()
            await hold.released.wait()
        return response

    async def _handle(self, request: web.Request, handler: Handler, method: str, path: str) -> web.StreamResponse:
        headers = _rate_limit_headers(method, path)
        limit = self.channel_limit
        limited_channel = limit.channel_of(method, path) if limit is not None else None
        if limit is not None and limited_channel is not None:
            allowed, headers = limit.take(limited_channel)
            if not allowed:
                return limit.refusal(headers)
        try:
            response = await handler(request)
        except ApiError as error:
            response = error.response()
        if 200 <= response.status < 300:
            response.headers.update(headers)
        return response

    @staticmethod
    async def _not_found(_: web.Request) -> web.Response:
        raise ApiError(404, 0, "404: Not Found")

    async def _get_me(self, _: web.Request) -> web.Response:
        return json_response(self._world.bot_user)

    async def _application_info(self, _: web.Request) -> web.Response:
        world = self._world
        return json_response(
            {
                "id": world.bot_id,
                "name": world.bot_user["username"],
                "description": "",
                "icon": None,
                "bot_public": True,
                "bot_require_code_grant": False,
                "owner": world.owner,
                "team": None,
                "verify_key": "0" * 64,
                "flags": 0,
                "bot": world.bot_user,
                "interactions_endpoint_url": None,
            }
        )

    async def _get_gateway(self, request: web.Request) -> web.Response:
        if not request.path.endswith("/bot"):
            return json_response({"url": self._gateway.url})
        # discord.py ignores max_concurrency: it pauses 5 s before each IDENTIFY but its first whatever this says.
        limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        shards = self._world.recommended_shards
        return json_response({"url": self._gateway.url, "shards": shards, "session_start_limit": limit})

    async def _get_user(self, request: web.Request) -> web.Response:
        user = self._world.users.get(request.match_info["user_id"])
        if user is None:
            raise ApiError(404, 10013, "Unknown User")
        return json_response(user)

    async def _get_member(self, request: web.Request) -> web.Response:
        user_id = request.match_info["user_id"]
        if request.match_info["guild_id"] not in self._world.guilds:
            raise ApiError(404, 10004, "Unknown Guild")
        if user_id not in self._world.members:
            raise ApiError(404, 10007, "Unknown Member")
        return json_response(self._world.member_payload(user_id))

    async def _create_dm(self, request: web.Request) -> web.Response:
        recipient_id = str((await request.json()).get("recipient_id"))
        if recipient_id not in self._world.users:
            raise ApiError(404, 10013, "Unknown User")
        return json_response(self._world.dm_channel_for(recipient_id))

    async def _get_channel(self, request: web.Request) -> web.Response:
        return json_response(channel_of(self._world, request))
