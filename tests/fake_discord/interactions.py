"""Interactions on the fake Discord: each one's record (its callback, original answer and follow-ups), its
deadlines, and the callback route that acknowledges it, with Discord's refusals (40060, 10062)."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from tests.fake_discord.faults import ApiError, invalid_field, json_response, no_content
from tests.fake_discord.gateway import Gateway
from tests.fake_discord.interaction_payloads import AUTOCOMPLETE_INTERACTION, MESSAGE_COMPONENT_INTERACTION
from tests.fake_discord.journal import Journal
from tests.fake_discord.messages import check_sendable, edit_changes, read_body, store_files
from tests.fake_discord.state import Payload, World

INTERACTION_DEADLINE_SECONDS = 3.0
"""Discord forgets an interaction not acknowledged within 3 s (the callback then gets 10062)."""

INTERACTION_TOKEN_TTL_SECONDS = 900.0
"""An interaction's token works for 15 minutes (then 401, code 50027)."""

CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, AUTOCOMPLETE_RESULT = 4, 5, 8
DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE = 6, 7
"""Callback types the fake models; 6 and 7 (a button's message, updated later or now) only for a component's
interaction, as on Discord; 9 (modal) is refused."""

EPHEMERAL_FLAG = 1 << 6
LOADING_FLAG = 1 << 7
"""The "bot is thinking..." state of a deferred answer, until it is edited or followed up."""

CHAT_INPUT_COMMAND_MESSAGE = 20
MAX_CHOICES = 25


@dataclass(eq=False)
class InteractionHandle:
    """One interaction and what the bot did with it, for assertions; its fields fill in as the bot answers.

    `callback` is {type, content, flags, after_s (seconds after the interaction), data}; `followups` holds
    {id, content, flags, after_s} per follow-up; `refusals` the error codes the fake answered the bot with.
    """

    id: str
    token: str
    name: str
    type: int
    user_id: str
    channel_id: str
    guild_id: str | None
    payload: Payload
    _world: World = field(repr=False)
    _journal: Journal = field(repr=False)
    created_at: float = field(default_factory=time.monotonic)
    callback: Payload | None = None
    original_id: str | None = None
    original_edits: int = 0
    followups: list[Payload] = field(default_factory=list)
    choices: list[Payload] | None = None
    refusals: list[int] = field(default_factory=list)
    message_id: str | None = None
    """A component's interaction: the message whose button was pressed (its `@original`)."""

    @property
    def responded(self) -> bool:
        return self.callback is not None

    @property
    def deferred(self) -> bool:
        return self.callback is not None and self.callback["type"] == DEFERRED_CHANNEL_MESSAGE

    @property
    def ephemeral(self) -> bool:
        """Whether the answer (callback message or deferral) is seen only by the invoker (flag 64)."""
        return self.callback is not None and bool(self.callback["flags"] & EPHEMERAL_FLAG)

    @property
    def original(self) -> Payload | None:
        """The original answer as it is now (None before a message or deferral, or once deleted)."""
        world, message_id = self._world, self.original_id
        message = world.messages.get(message_id or "") or world.ephemeral_messages.get(message_id or "")
        return copy.deepcopy(message) if message is not None else None

    @property
    def original_history(self) -> list[str]:
        """Every content of the original answer: at creation ("" for a deferral's loading message), after each edit."""
        return list(self._world.history.get(self.original_id or "", []))

    def age(self) -> float:
        return time.monotonic() - self.created_at

    async def wait_until(
        self, condition: Callable[[InteractionHandle], bool], *, timeout: float = 30.0, what: str = "a change"
    ) -> None:
        """Returns once `condition(self)` holds (the bot may answer from another process)."""

        def describe() -> str:
            done = f"callback {self.callback}, followups {self.followups}"
            return f"interaction /{self.name} {self.id}: wanted {what}; {done}"

        await self._journal.wait_until(lambda: condition(self), timeout=timeout, describe=describe)

    async def wait_responded(self, timeout: float = 30.0) -> Payload:
        await self.wait_until(lambda handle: handle.responded, timeout=timeout, what="a callback")
        assert self.callback is not None
        return self.callback

    async def wait_followups(self, count: int, timeout: float = 30.0) -> list[Payload]:
        await self.wait_until(
            lambda handle: len(handle.followups) >= count, timeout=timeout, what=f"{count} follow-ups"
        )
        return self.followups


@dataclass
class InteractionStore:
    """Every interaction by id, and the two clocks Discord holds them to (settable, so tests can shorten them)."""

    deadline_s: float = INTERACTION_DEADLINE_SECONDS
    token_ttl_s: float = INTERACTION_TOKEN_TTL_SECONDS
    by_id: dict[str, InteractionHandle] = field(default_factory=dict)

    def by_token(self, token: str) -> InteractionHandle | None:
        return next((handle for handle in self.by_id.values() if handle.token == token), None)


def interaction_message(
    world: World, handle: InteractionHandle, body: Payload, attachments: list[Payload], *, flags: int, original: bool
) -> Payload:
    """A message the bot posts through an interaction: the original answer (type 20) or a follow-up."""
    content = body.get("content") or ""
    user = world.users[handle.user_id]
    metadata: Payload = {"id": handle.id, "type": handle.type, "user": user, "authorizing_integration_owners": {}}
    overrides: Payload = {"application_id": world.bot_id, "interaction_metadata": metadata}
    if original:
        overrides["type"] = CHAT_INPUT_COMMAND_MESSAGE
        overrides["interaction"] = {"id": handle.id, "type": handle.type, "name": handle.name, "user": user}
    else:
        metadata["original_response_message_id"] = handle.original_id
    mentions = world.pinged_ids(world.bot_id, content, reply_to=None, allowed_mentions=body.get("allowed_mentions"))
    return world.create_message(
        handle.channel_id,
        world.bot_user,
        content,
        mention_ids=mentions,
        webhook_id=world.bot_id,
        embeds=body.get("embeds"),
        attachments=attachments,
        flags=flags,
        overrides=overrides,
        ephemeral=bool(flags & EPHEMERAL_FLAG),
    )


class CallbackRoute:
    """POST /interactions/{id}/{token}/callback: the one acknowledgement an interaction gets."""

    def __init__(self, world: World, journal: Journal, gateway: Gateway, store: InteractionStore) -> None:
        self._world = world
        self._journal = journal
        self._gateway = gateway
        self._store = store

    def add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_post("/interactions/{interaction_id}/{token}/callback", self._callback)

    async def _callback(self, request: web.Request) -> web.Response:
        handle = self._store.by_id.get(request.match_info["interaction_id"])
        if handle is None or handle.token != request.match_info["token"]:
            raise ApiError(404, 10062, "Unknown interaction")
        try:
            answer = await self._acknowledge(request, handle)
        except ApiError as error:
            handle.refusals.append(error.body["code"])
            self._journal.notify()
            raise
        self._journal.notify()
        if request.query.get("with_response", "").lower() not in ("1", "true"):
            return no_content()
        return json_response(answer)

    async def _acknowledge(self, request: web.Request, handle: InteractionHandle) -> Payload:
        """Checks the callback as Discord does, records it, and returns the interaction callback response."""
        after_s = handle.age()
        body, files = await read_body(request)
        # No await from here until the callback is recorded, so two racing callbacks cannot both pass.
        if handle.callback is not None:
            raise ApiError(400, 40060, "Interaction has already been acknowledged.")
        if after_s > self._store.deadline_s:
            raise ApiError(404, 10062, "Unknown interaction")
        callback_type, data = body.get("type"), body.get("data") or {}
        autocomplete = handle.type == AUTOCOMPLETE_INTERACTION
        allowed = (AUTOCOMPLETE_RESULT,) if autocomplete else (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE)
        if handle.type == MESSAGE_COMPONENT_INTERACTION:
            allowed = (CHANNEL_MESSAGE, DEFERRED_CHANNEL_MESSAGE, DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE)
        if callback_type not in allowed:
            raise invalid_field("type", "INTERACTION_CALLBACK_TYPE_INVALID", "Invalid interaction callback type")
        if len(data.get("choices") or []) > MAX_CHOICES:
            raise invalid_field("data.choices", "BASE_TYPE_MAX_LENGTH", f"Must be {MAX_CHOICES} or fewer in length.")
        if callback_type == CHANNEL_MESSAGE:
            check_sendable({**data, "attachments": files})
        flags = int(data.get("flags") or 0)
        handle.callback = {
            "type": callback_type,
            "content": data.get("content"),
            "flags": flags,
            "after_s": after_s,
            "data": data,
        }
        resource: Payload = {"type": callback_type}
        if callback_type == AUTOCOMPLETE_RESULT:
            handle.choices = data.get("choices") or []
        elif callback_type in (DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE):
            # The button's message is the original: 7 edits it now, 6 leaves it for an edit of @original later.
            handle.original_id = handle.message_id
            if callback_type == UPDATE_MESSAGE:
                resource["message"] = await self._update(request, handle, data, files)
        else:
            # A deferral's original is an empty "thinking" message, as ephemeral as the deferral asked.
            shown = data if callback_type == CHANNEL_MESSAGE else {}
            flags = flags if callback_type == CHANNEL_MESSAGE else (flags & EPHEMERAL_FLAG) | LOADING_FLAG
            attachments = store_files(self._world, request, handle.channel_id, files)
            message = interaction_message(self._world, handle, shown, attachments, flags=flags, original=True)
            handle.original_id = message["id"]
            resource["message"] = message
            if not flags & EPHEMERAL_FLAG:
                await self._gateway.dispatch_message("MESSAGE_CREATE", message)
        return {
            "interaction": {
                "id": handle.id,
                "type": handle.type,
                **({"response_message_id": handle.original_id} if handle.original_id else {}),
                "response_message_loading": bool(flags & LOADING_FLAG),
                "response_message_ephemeral": bool(flags & EPHEMERAL_FLAG),
            },
            "resource": resource,
        }

    async def _update(
        self, request: web.Request, handle: InteractionHandle, data: Payload, files: list[tuple[str, str, bytes]]
    ) -> Payload:
        """UPDATE_MESSAGE: the button's message edited as the callback says (content, components...)."""
        message = self._world.messages.get(handle.message_id or "")
        if message is None:
            raise ApiError(404, 10008, "Unknown Message")
        edited = self._world.edit_message(message["id"], edit_changes(self._world, request, message, data, files))
        self._journal.edits.append({**data, "message_id": message["id"], "channel_id": message["channel_id"]})
        await self._gateway.dispatch_message("MESSAGE_UPDATE", copy.deepcopy(edited))
        return edited
