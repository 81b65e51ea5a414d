"""The fake Discord REST API (/api/v10): the routes discord.py uses to log in, send, edit, react and type."""

from __future__ import annotations

import copy
import json
import time
import zlib
from collections.abc import Awaitable, Callable

from aiohttp import BodyPartReader, hdrs, web

from tests.fake_discord.faults import (
    ApiError,
    FaultPlan,
    invalid_field,
    json_response,
    unknown_channel,
    unknown_message,
)
from tests.fake_discord.gateway import Gateway
from tests.fake_discord.journal import Journal
from tests.fake_discord.ratelimit import ChannelMessageLimit
from tests.fake_discord.state import Payload, World
from tests.fake_discord.threads import ThreadRoutes

API_PREFIX = "/api/v10"
MAX_CONTENT_CHARS = 2000
RATE_LIMIT = 50
"""Requests per bucket the fake advertises; it never runs out, so clients never wait ahead of time."""

NON_TEXT_PARTS = ("embeds", "attachments", "sticker_ids", "components", "poll")
"""What makes a message without text non-empty."""

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


def _check_sendable(message: Payload) -> None:
    content = message.get("content") or ""
    if len(content) > MAX_CONTENT_CHARS:
        raise invalid_field("content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT_CHARS} or fewer in length.")
    if not content.strip() and not any(message.get(key) for key in NON_TEXT_PARTS):
        raise ApiError(400, 50006, "Cannot send an empty message")


async def _read_body(request: web.Request) -> tuple[Payload, list[tuple[str, str, bytes]]]:
    """The JSON payload of a request and its uploaded files (filename, content type, bytes)."""
    if request.content_type != "multipart/form-data":
        return (await request.json() if request.can_read_body else {}), []
    body: Payload = {}
    files = []
    async for part in await request.multipart():
        if not isinstance(part, BodyPartReader):
            continue
        if part.name == "payload_json":
            body = json.loads(await part.text())
        elif part.filename:
            content_type = part.headers.get(hdrs.CONTENT_TYPE, "application/octet-stream")
            files.append((part.filename, content_type, bytes(await part.read())))
    return body, files


class RestApi:
    """Route handlers over the shared world; every message change is also dispatched through the gateway."""

    def __init__(self, world: World, journal: Journal, gateway: Gateway, token: str, faults: FaultPlan) -> None:
        self._world = world
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
        app.router.add_post("/channels/{channel_id}/messages", self._create_message)
        app.router.add_get("/channels/{channel_id}/messages/{message_id}", self._get_message)
        app.router.add_patch("/channels/{channel_id}/messages/{message_id}", self._edit_message)
        app.router.add_delete("/channels/{channel_id}/messages/{message_id}", self._delete_message)
        app.router.add_post("/channels/{channel_id}/typing", self._typing)
        app.router.add_put("/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self._react)
        app.router.add_get("/guilds/{guild_id}/members/{user_id}", self._get_member)
        ThreadRoutes(self._world, self._gateway).add_routes(app.router)
        for commands in ("/applications/{app_id}/commands", "/applications/{app_id}/guilds/{guild_id}/commands"):
            # Registered commands are not modelled: syncing succeeds and registers nothing.
            app.router.add_get(commands, self._no_commands)
            app.router.add_put(commands, self._no_commands)
        app.router.add_route("*", "/{tail:.*}", self._not_found)
        return app

    async def serve_attachment(self, request: web.Request) -> web.Response:
        """The CDN side: bytes of a file the bot uploaded, at the URL its attachment carries."""
        stored = self._world.files.get(request.match_info["attachment_id"])
        if stored is None:
            raise web.HTTPNotFound()
        content_type, data = stored
        return web.Response(body=data, headers={hdrs.CONTENT_TYPE: content_type})

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        method, full_path = request.method, request.path
        path = full_path.removeprefix(API_PREFIX)
        response: web.StreamResponse
        if request.headers.get(hdrs.AUTHORIZATION) != f"Bot {self._token}":
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

    @staticmethod
    def _no_content() -> web.Response:
        # No Content-Type: discord.py would try to parse the empty body as JSON if it said application/json.
        return web.Response(status=204)

    async def _get_me(self, _: web.Request) -> web.Response:
        return json_response(self._world.bot_user)

    @staticmethod
    async def _no_commands(_: web.Request) -> web.Response:
        return json_response([])

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
        limit = {"total": 1000, "remaining": 999, "reset_after": 86_400_000, "max_concurrency": 1}
        return json_response({"url": self._gateway.url, "shards": 1, "session_start_limit": limit})

    def _channel(self, request: web.Request) -> Payload:
        channel = self._world.channels.get(request.match_info["channel_id"])
        if channel is None:
            raise unknown_channel()
        return channel

    def _message(self, request: web.Request) -> Payload:
        channel = self._channel(request)
        message = self._world.messages.get(request.match_info["message_id"])
        if message is None or message["channel_id"] != channel["id"]:
            raise unknown_message()
        return message

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
        return json_response(self._channel(request))

    async def _get_message(self, request: web.Request) -> web.Response:
        return json_response(self._message(request))

    async def _create_message(self, request: web.Request) -> web.Response:
        received_at = time.monotonic()
        world, channel = self._world, self._channel(request)
        body, files = await _read_body(request)
        nonce = str(body["nonce"]) if body.get("nonce") is not None else None
        nonce_key = (channel["id"], world.bot_id, nonce or "")
        earlier_id = world.nonces.get(nonce_key) if nonce is not None and body.get("enforce_nonce") else None
        if earlier_id in world.messages:
            # Discord answers a repeated nonce with the message it already created, and creates nothing.
            return json_response(world.messages[earlier_id])
        attachments = [self._store_file(request, channel["id"], *file) for file in files]
        _check_sendable({**body, "attachments": attachments})
        reply_to = self._reply_target(body.get("message_reference"))
        content = body.get("content") or ""
        message = world.create_message(
            channel["id"],
            world.bot_user,
            content,
            mention_ids=world.pinged_ids(
                world.bot_id, content, reply_to=reply_to, allowed_mentions=body.get("allowed_mentions")
            ),
            reply_to=reply_to,
            nonce=nonce,
            embeds=body.get("embeds"),
            attachments=attachments,
        )
        if nonce is not None:
            world.nonces[nonce_key] = message["id"]
        # `_received_at` (time.monotonic()) lets benchmarks time a reply against the message it answers.
        self._journal.posted.append({**copy.deepcopy(message), "_request": body, "_received_at": received_at})
        self._journal.notify()
        await self._gateway.dispatch_message("MESSAGE_CREATE", message)
        return json_response(message)

    def _reply_target(self, reference: Payload | None) -> str | None:
        if not reference or reference.get("type", 0) != 0:
            return None
        message_id = str(reference.get("message_id"))
        if message_id in self._world.messages:
            return message_id
        if reference.get("fail_if_not_exists", True):
            raise invalid_field("message_reference", "REPLIES_UNKNOWN_MESSAGE", "Unknown message")
        return None

    def _store_file(
        self, request: web.Request, channel_id: str, filename: str, content_type: str, data: bytes
    ) -> Payload:
        attachment_id = self._world.ids.next()
        self._world.files[attachment_id] = (content_type, data)
        url = f"{request.url.origin()}/attachments/{channel_id}/{attachment_id}/{filename}"
        return {
            "id": attachment_id,
            "filename": filename,
            "size": len(data),
            "url": url,
            "proxy_url": url,
            "content_type": content_type,
        }

    async def _edit_message(self, request: web.Request) -> web.Response:
        message = self._message(request)
        if message["author"]["id"] != self._world.bot_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        body, files = await _read_body(request)
        changes: Payload = {key: body[key] for key in ("content", "embeds", "flags") if key in body}
        edited = {**message, **changes}
        if files:
            edited["attachments"] = [self._store_file(request, message["channel_id"], *file) for file in files]
        _check_sendable(edited)
        edited = self._world.edit_message(message["id"], {key: edited[key] for key in (*changes, "attachments")})
        self._journal.edits.append({**body, "message_id": message["id"], "channel_id": message["channel_id"]})
        self._journal.notify()
        await self._gateway.dispatch_message("MESSAGE_UPDATE", edited)
        return json_response(edited)

    async def _delete_message(self, request: web.Request) -> web.Response:
        message = self._message(request)
        self._journal.deleted.append((message["channel_id"], message["id"]))
        self._journal.notify()
        await self._gateway.dispatch_message_delete(self._world.delete_message(message["id"]))
        return self._no_content()

    async def _typing(self, request: web.Request) -> web.Response:
        self._journal.typing.append(self._channel(request)["id"])
        self._journal.notify()
        return self._no_content()

    async def _react(self, request: web.Request) -> web.Response:
        message = self._message(request)
        self._journal.reactions.append((message["channel_id"], message["id"], request.match_info["emoji"]))
        self._journal.notify()
        return self._no_content()
