"""An interaction token's webhook: follow-ups and the original answer (read, edit, delete), valid for 15 minutes."""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable

from aiohttp import web

from tests.fake_discord.faults import ApiError, json_response, no_content, unknown_message
from tests.fake_discord.gateway import Gateway
from tests.fake_discord.interactions import (
    EPHEMERAL_FLAG,
    LOADING_FLAG,
    InteractionHandle,
    InteractionStore,
    interaction_message,
)
from tests.fake_discord.journal import Journal
from tests.fake_discord.messages import check_sendable, edit_changes, read_body, store_files
from tests.fake_discord.state import Payload, World

ORIGINAL = "@original"

TokenHandler = Callable[[web.Request, InteractionHandle], Awaitable[web.Response]]


class WebhookRoutes:
    """/webhooks/{application_id}/{token}[/messages/{id or @original}] for interaction tokens (no bot auth)."""

    def __init__(self, world: World, journal: Journal, gateway: Gateway, store: InteractionStore) -> None:
        self._world = world
        self._journal = journal
        self._gateway = gateway
        self._store = store

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/webhooks/{application_id}/{token}", self._for_token(self._follow_up))
        message = "/webhooks/{application_id}/{token}/messages/{message_id}"
        router.add_get(message, self._for_token(self._get))
        router.add_patch(message, self._for_token(self._edit))
        router.add_delete(message, self._for_token(self._delete))

    def _for_token(self, handler: TokenHandler) -> Callable[[web.Request], Awaitable[web.Response]]:
        """The route for `handler`, given the interaction whose token is in the path; refusals are journaled."""

        async def route(request: web.Request) -> web.Response:
            if request.match_info["application_id"] != self._world.bot_id:
                raise ApiError(404, 10015, "Unknown Webhook")
            handle = self._store.by_token(request.match_info["token"])
            if handle is None:
                raise ApiError(401, 50027, "Invalid Webhook Token")
            try:
                if handle.age() > self._store.token_ttl_s:
                    raise ApiError(401, 50027, "Invalid Webhook Token")
                return await handler(request, handle)
            except ApiError as error:
                handle.refusals.append(error.body["code"])
                self._journal.notify()
                raise

        return route

    def _own_message(self, request: web.Request, handle: InteractionHandle) -> Payload:
        message_id = request.match_info["message_id"]
        if message_id == ORIGINAL:
            message_id = handle.original_id or ""  # no original before a callback: Unknown Message
        elif message_id != handle.original_id and all(f["id"] != message_id for f in handle.followups):
            raise unknown_message()
        message = self._world.messages.get(message_id) or self._world.ephemeral_messages.get(message_id)
        if message is None:
            raise unknown_message()
        return message

    async def _get(self, request: web.Request, handle: InteractionHandle) -> web.Response:
        return json_response(self._own_message(request, handle))

    async def _follow_up(self, request: web.Request, handle: InteractionHandle) -> web.Response:
        """A follow-up; after a deferral, the first one takes the place of the "thinking" original, as on Discord."""
        if handle.callback is None:
            raise ApiError(404, 10015, "Unknown Webhook")
        body, files = await read_body(request)
        attachments = store_files(self._world, request, handle.channel_id, files)
        check_sendable({**body, "attachments": attachments})
        original = handle.original
        if original is not None and original["flags"] & LOADING_FLAG:
            replacing = {**self._fields(body), "attachments": attachments}
            message = await self._edit_message(handle, original, replacing, by_patch=False)
        else:
            flags = int(body.get("flags") or 0)
            message = interaction_message(self._world, handle, body, attachments, flags=flags, original=False)
            if not flags & EPHEMERAL_FLAG:
                await self._gateway.dispatch_message("MESSAGE_CREATE", message)
        content = body.get("content")
        followup = {"id": message["id"], "content": content, "flags": message["flags"], "after_s": handle.age()}
        handle.followups.append(followup)
        self._journal.notify()
        if request.query.get("wait", "").lower() not in ("1", "true"):
            return no_content()
        return json_response(message)

    async def _edit(self, request: web.Request, handle: InteractionHandle) -> web.Response:
        message = self._own_message(request, handle)
        body, files = await read_body(request)
        changes = edit_changes(self._world, request, message, body, files)
        edited = await self._edit_message(handle, message, changes, by_patch=True)
        self._journal.notify()
        return json_response(edited)

    async def _delete(self, request: web.Request, handle: InteractionHandle) -> web.Response:
        message = self._own_message(request, handle)
        if self._world.ephemeral_messages.pop(message["id"], None) is None:
            await self._gateway.dispatch_message_delete(self._world.delete_message(message["id"]))
        self._journal.deleted.append((message["channel_id"], message["id"]))
        self._journal.notify()
        return no_content()

    @staticmethod
    def _fields(body: Payload) -> Payload:
        return {key: body[key] for key in ("content", "embeds") if key in body}

    async def _edit_message(
        self, handle: InteractionHandle, message: Payload, changes: Payload, *, by_patch: bool
    ) -> Payload:
        """Edits an interaction's message; it stops "thinking", and stays exactly as ephemeral as it was."""
        flags = message["flags"] & ~LOADING_FLAG
        if "flags" in changes:
            flags = (flags & EPHEMERAL_FLAG) | (int(changes["flags"] or 0) & ~(EPHEMERAL_FLAG | LOADING_FLAG))
        edited = self._world.edit_message(message["id"], {**changes, "flags": flags})
        if by_patch and message["id"] == handle.original_id:
            handle.original_edits += 1
        if not flags & EPHEMERAL_FLAG:
            await self._gateway.dispatch_message("MESSAGE_UPDATE", copy.deepcopy(edited))
        return edited
