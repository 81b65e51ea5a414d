"""The bot's message routes (send, read, edit, delete, react, type) and the checks Discord applies to a message."""

from __future__ import annotations

import copy
import json
import time

from aiohttp import BodyPartReader, hdrs, web

from tests.fake_discord.faults import (
    ApiError,
    invalid_field,
    json_response,
    no_content,
    unknown_channel,
    unknown_message,
)
from tests.fake_discord.gateway import Gateway
from tests.fake_discord.journal import Journal
from tests.fake_discord.state import Payload, World

MAX_CONTENT_CHARS = 2000
NON_TEXT_PARTS = ("embeds", "attachments", "sticker_ids", "components", "poll")
"""What makes a message without text non-empty."""

EDITABLE_FIELDS = ("content", "embeds", "flags", "components")

UploadedFile = tuple[str, str, bytes]
"""(filename, content type, bytes) of a file sent along with a message."""


def check_sendable(message: Payload) -> None:
    """Discord's refusals of a message body: content over 2000 characters (50035), nothing at all (50006)."""
    content = message.get("content") or ""
    if len(content) > MAX_CONTENT_CHARS:
        raise invalid_field("content", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CONTENT_CHARS} or fewer in length.")
    if not content.strip() and not any(message.get(key) for key in NON_TEXT_PARTS):
        raise ApiError(400, 50006, "Cannot send an empty message")


async def read_body(request: web.Request) -> tuple[Payload, list[UploadedFile]]:
    """The JSON payload of a request and its uploaded files."""
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


def store_files(world: World, request: web.Request, channel_id: str, files: list[UploadedFile]) -> list[Payload]:
    """Keeps uploaded files for the fake CDN and returns their attachments, with URLs on this server."""
    attachments = []
    for filename, content_type, data in files:
        attachment_id = world.ids.next()
        world.files[attachment_id] = (content_type, data)
        url = f"{request.url.origin()}/attachments/{channel_id}/{attachment_id}/{filename}"
        attachments.append(
            {
                "id": attachment_id,
                "filename": filename,
                "size": len(data),
                "url": url,
                "proxy_url": url,
                "content_type": content_type,
            }
        )
    return attachments


def edit_changes(
    world: World, request: web.Request, message: Payload, body: Payload, files: list[UploadedFile]
) -> Payload:
    """What an edit body changes in `message`, checked as Discord checks the edited message."""
    changes: Payload = {key: body[key] for key in EDITABLE_FIELDS if key in body}
    if files:
        changes["attachments"] = store_files(world, request, message["channel_id"], files)
    check_sendable({**message, **changes})
    return changes


def channel_of(world: World, request: web.Request) -> Payload:
    channel = world.channels.get(request.match_info["channel_id"])
    if channel is None:
        raise unknown_channel()
    return channel


class MessageRoutes:
    """What the bot does to messages through REST; every change is also dispatched through the gateway."""

    def __init__(self, world: World, journal: Journal, gateway: Gateway) -> None:
        self._world = world
        self._journal = journal
        self._gateway = gateway

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/channels/{channel_id}/messages", self._create_message)
        router.add_get("/channels/{channel_id}/messages", self._list_messages)
        router.add_get("/channels/{channel_id}/messages/{message_id}", self._get_message)
        router.add_patch("/channels/{channel_id}/messages/{message_id}", self._edit_message)
        router.add_delete("/channels/{channel_id}/messages/{message_id}", self._delete_message)
        router.add_post("/channels/{channel_id}/typing", self._typing)
        router.add_put("/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self._react)
        router.add_delete("/channels/{channel_id}/messages/{message_id}/reactions/{emoji}/@me", self._unreact)

    def _message(self, request: web.Request) -> Payload:
        channel = channel_of(self._world, request)
        message = self._world.messages.get(request.match_info["message_id"])
        if message is None or message["channel_id"] != channel["id"]:
            raise unknown_message()
        return message

    async def _list_messages(self, request: web.Request) -> web.Response:
        """A channel's messages, newest first as Discord answers `before` (or no anchor); with `after`, the oldest
        `limit` messages after it (Discord then answers them newest first too). Ephemeral ones are never listed."""
        channel = channel_of(self._world, request)
        limit = max(1, min(100, int(request.query.get("limit", "50"))))
        found = sorted(
            (m for m in self._world.messages.values() if m["channel_id"] == channel["id"]), key=lambda m: int(m["id"])
        )
        if "after" in request.query:
            found = [m for m in found if int(m["id"]) > int(request.query["after"])][:limit]
        else:
            if "before" in request.query:
                found = [m for m in found if int(m["id"]) < int(request.query["before"])]
            found = found[-limit:]
        return json_response(list(reversed(found)))

    async def _get_message(self, request: web.Request) -> web.Response:
        return json_response(self._message(request))

    async def _create_message(self, request: web.Request) -> web.Response:
        received_at = time.monotonic()
        world, channel = self._world, channel_of(self._world, request)
        body, files = await read_body(request)
        nonce = str(body["nonce"]) if body.get("nonce") is not None else None
        nonce_key = (channel["id"], world.bot_id, nonce or "")
        earlier_id = world.nonces.get(nonce_key) if nonce is not None and body.get("enforce_nonce") else None
        if earlier_id in world.messages:
            # Discord answers a repeated nonce with the message it already created, and creates nothing.
            return json_response(world.messages[earlier_id])
        attachments = store_files(world, request, channel["id"], files)
        check_sendable({**body, "attachments": attachments})
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
            components=body.get("components"),
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

    async def _edit_message(self, request: web.Request) -> web.Response:
        message = self._message(request)
        if message["author"]["id"] != self._world.bot_id:
            raise ApiError(403, 50005, "Cannot edit a message authored by another user")
        body, files = await read_body(request)
        edited = self._world.edit_message(message["id"], edit_changes(self._world, request, message, body, files))
        edit = {
            **body,
            "message_id": message["id"],
            "channel_id": message["channel_id"],
            "_received_at": time.monotonic(),
        }
        self._journal.edits.append(edit)
        self._journal.notify()
        await self._gateway.dispatch_message("MESSAGE_UPDATE", edited)
        return json_response(edited)

    async def _delete_message(self, request: web.Request) -> web.Response:
        message = self._message(request)
        self._journal.deleted.append((message["channel_id"], message["id"]))
        self._journal.notify()
        await self._gateway.dispatch_message_delete(self._world.delete_message(message["id"]))
        return no_content()

    async def _typing(self, request: web.Request) -> web.Response:
        self._journal.typing.append(channel_of(self._world, request)["id"])
        self._journal.notify()
        return no_content()

    async def _react(self, request: web.Request) -> web.Response:
        message = self._message(request)
        self._journal.reactions.append((message["channel_id"], message["id"], request.match_info["emoji"]))
        self._journal.notify()
        return no_content()

    async def _unreact(self, request: web.Request) -> web.Response:
        """Discord answers 204 whether or not the reaction was there."""
        message = self._message(request)
        self._journal.reactions_removed.append((message["channel_id"], message["id"], request.match_info["emoji"]))
        self._journal.notify()
        return no_content()
