"""Payloads that travel through Redis, as TypedDicts with JSON codecs (never pickle)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal, NotRequired, TypedDict, cast

from shared.errors import JobPayloadError


class Turn(TypedDict):
    """One message of a conversation, in the shape chat templates take (plus who spoke, in shared ones)."""

    role: Literal["user", "assistant"]
    content: str
    # In shared conversations only: the speaker of a user turn, or the user an assistant turn answers (what
    # `!forget` and `!optout` remove), and the speaker's display name, shown to the model.
    user_id: NotRequired[str]
    name: NotRequired[str]


class Job(TypedDict):
    """A user's message waiting for an answer; its id is the Discord message id."""

    id: str
    user_id: str
    channel_id: str
    guild_id: str | None
    content: str
    enqueued_at: float
    attempts: int
    # Where its history lives and which lane it waits in (shared/conversation_ids.py); jobs queued before
    # conversations existed have neither, and belong to their author's conversation in their channel.
    conversation: NotRequired[str]
    lane: NotRequired[str]
    author_name: NotRequired[str]
    """The author's display name, carried in shared conversations only (the model sees who speaks)."""
    model: NotRequired[str]
    """The model that answers it, decided by the bot when it queued it; a job queued before there were several
    models names none (any runner answers it)."""
    unavailable_told: NotRequired[bool]
    """Set once its user was told that its model is not served right now (told once only)."""
    # Sampling overrides for this job; a runner falls back to its settings for missing ones.
    max_new_tokens: NotRequired[int]
    temperature: NotRequired[float]
    # For benchmarks and tests, never set by the bot: the end-of-sequence token is ignored until this many tokens
    # are generated, so that every answer does the same work.
    min_new_tokens: NotRequired[int]


ResponseKind = Literal["answer", "partial", "apology", "started", "retract"]
"""answer/apology: the final text; partial: the job's text grew (read from stream:{job}); started: a runner began
on it (acknowledge, show typing); retract: its user opted out mid-stream (delete what was posted)."""


class Response(TypedDict):
    """What to do on Discord for a job: see ResponseKind; `content` is the text for answers and apologies."""

    job_id: str
    user_id: str
    channel_id: str
    kind: ResponseKind
    content: str
    enqueued_at: float
    completed_at: float
    lane: NotRequired[str]
    """The job's lane: an updater posts one lane's responses in the order it claimed them."""
    fresh: NotRequired[bool]
    """True when nothing of the job can be on Discord yet (no partial was noticed, no updater held it), so the
    updater posts it without reading its posted record or taking its lock; absent means "maybe"."""


_JOB_FIELDS: dict[str, type] = {"id": str, "user_id": str, "channel_id": str, "content": str, "attempts": int}
_RESPONSE_FIELDS: dict[str, type] = {"job_id": str, "user_id": str, "channel_id": str, "kind": str, "content": str}


def encode(payload: Job | Response | Turn) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"))


def decode_job(raw: str | bytes) -> Job:
    return cast(Job, _decode(raw, _JOB_FIELDS, "job"))


def decode_response(raw: str | bytes) -> Response:
    return cast(Response, _decode(raw, _RESPONSE_FIELDS, "response"))


def _decode(raw: str | bytes, required: Mapping[str, type], what: str) -> dict[str, object]:
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise JobPayloadError(f"{what} payload is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise JobPayloadError(f"{what} payload is not an object")
    for name, kind in required.items():
        if not isinstance(data.get(name), kind):
            raise JobPayloadError(f"{what} payload has no valid {name!r}")
    return data
