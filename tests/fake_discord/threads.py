"""Threads on the fake Discord: opening them (REST or a user), with Discord's checks, and announcing them."""

from __future__ import annotations

import copy

from aiohttp import web

from tests.fake_discord.faults import ApiError, invalid_field, json_response, unknown_channel, unknown_message
from tests.fake_discord.gateway import Gateway
from tests.fake_discord.payloads import PUBLIC_THREAD_TYPE, TEXT_CHANNEL_TYPE, THREAD_TYPES, thread_member_payload
from tests.fake_discord.state import Payload, World

ANNOUNCEMENT_CHANNEL_TYPE = 5
MAX_THREAD_NAME_CHARS = 100
AUTO_ARCHIVE_MINUTES = (60, 1440, 4320, 10080)
"""The only auto_archive_duration values Discord accepts."""


def open_thread(
    world: World,
    parent_id: str,
    owner_id: str,
    body: Payload,
    *,
    starter_message_id: str | None = None,
) -> Payload:
    """Checks a thread request as Discord does and stores the thread; raises ApiError with Discord's code if refused.

    `body` is the REST body: name, auto_archive_duration, rate_limit_per_user and (without a starter) type.
    """
    parent = world.channels.get(parent_id)
    if parent is None:
        raise unknown_channel()
    if parent["type"] not in (TEXT_CHANNEL_TYPE, ANNOUNCEMENT_CHANNEL_TYPE):
        raise ApiError(400, 50024, "Cannot execute action on this channel type")
    if starter_message_id is not None:
        starter = world.messages.get(starter_message_id)
        if starter is None or starter["channel_id"] != parent_id:
            raise unknown_message()
        if "thread" in starter:
            raise ApiError(400, 160004, "A thread has already been created for this message")
    name = body.get("name")
    if name is None:
        raise invalid_field("name", "BASE_TYPE_REQUIRED", "This field is required")
    if not 1 <= len(str(name)) <= MAX_THREAD_NAME_CHARS:
        message = f"Must be between 1 and {MAX_THREAD_NAME_CHARS} in length."
        raise invalid_field("name", "BASE_TYPE_BAD_LENGTH", message)
    auto_archive = body.get("auto_archive_duration") or 1440
    if auto_archive not in AUTO_ARCHIVE_MINUTES:
        choices = f"Value must be one of {AUTO_ARCHIVE_MINUTES}."
        raise invalid_field("auto_archive_duration", "BASE_TYPE_CHOICES", choices)
    thread_type = PUBLIC_THREAD_TYPE if starter_message_id is not None else body.get("type") or PUBLIC_THREAD_TYPE
    if thread_type not in THREAD_TYPES:
        raise invalid_field("type", "BASE_TYPE_CHOICES", f"Value must be one of {THREAD_TYPES}.")
    return world.add_thread(
        parent_id,
        owner_id,
        str(name),
        starter_message_id=starter_message_id,
        thread_type=thread_type,
        auto_archive_duration=auto_archive,
        rate_limit_per_user=body.get("rate_limit_per_user") or 0,
    )


async def announce_thread(world: World, gateway: Gateway, thread: Payload) -> Payload:
    """THREAD_CREATE, and MESSAGE_UPDATE of the starter message that now carries `thread`; returns the REST answer.

    The bot joins a thread it opens, so its answer and event carry the bot's thread membership.
    """
    member = thread_member_payload(thread["id"], world.bot_id) if thread["owner_id"] == world.bot_id else None
    await gateway.dispatch_thread_create(copy.deepcopy(thread), member=member)
    starter = world.messages.get(thread["id"])
    if starter is not None:
        await gateway.dispatch_message("MESSAGE_UPDATE", copy.deepcopy(starter))
    return {**copy.deepcopy(thread), **({"member": member} if member else {})}


class ThreadRoutes:
    """REST routes that open threads on behalf of the bot."""

    def __init__(self, world: World, gateway: Gateway) -> None:
        self._world = world
        self._gateway = gateway

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/channels/{channel_id}/messages/{message_id}/threads", self._from_message)
        router.add_post("/channels/{channel_id}/threads", self._without_message)

    async def _from_message(self, request: web.Request) -> web.Response:
        """Start Thread from Message: a public thread whose id is the starter message's id."""
        return await self._open(request, starter_message_id=request.match_info["message_id"])

    async def _without_message(self, request: web.Request) -> web.Response:
        return await self._open(request, starter_message_id=None)

    async def _open(self, request: web.Request, *, starter_message_id: str | None) -> web.Response:
        body = await request.json() if request.can_read_body else {}
        channel_id = request.match_info["channel_id"]
        thread = open_thread(self._world, channel_id, self._world.bot_id, body, starter_message_id=starter_message_id)
        # Discord answers a created thread with 201 Created.
        return json_response(await announce_thread(self._world, self._gateway, thread), status=201)
