"""Payloads that travel through Redis, as TypedDicts with JSON codecs (never pickle)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Literal, NotRequired, TypedDict, cast

from shared.config.secret import Secret
from shared.errors import JobPayloadError


class Turn(TypedDict):
    """One message of a conversation, in the shape chat templates take (plus who spoke, in shared ones)."""

    role: Literal["user", "assistant"]
    content: str
    # In shared conversations only: the speaker of a user turn, or the user an assistant turn answers (what
    # `!forget` and `!optout` remove), and the speaker's display name, shown to the model.
    user_id: NotRequired[str]
    name: NotRequired[str]


class InteractionRef(TypedDict):
    """The slash command (`/ask`) a job answers: its answer is the interaction's response, posted through the
    interaction's webhook while the token is valid. The token is a credential: wrapped in a Secret in memory, it is
    written out only in the JSON stored in Redis (which `!optout` erases with the job)."""

    application_id: str
    token: Secret
    expires_at: float
    """When the token stops working (epoch seconds); an answer after it goes to the channel as a plain message."""
    original_id: NotRequired[str]
    """The "thinking…" message the deferral made (a late answer in the channel replies to it)."""


class Attachment(TypedDict):
    """An image attached to a message, as Discord describes it (never its bytes: Redis stays small). The runner
    fetches it when it starts the job, within MAX_IMAGE_BYTES, and decides its type from the bytes."""

    url: str
    filename: str
    content_type: str
    """What Discord says it is (may be missing or wrong: only a hint)."""
    size: int
    width: NotRequired[int]
    height: NotRequired[int]


class Quoted(TypedDict):
    """The message a question replies to, quoted in that one answer's prompt only: never written into history."""

    author: str
    """Its author's display name (the bot's own name for one of its answers)."""
    by_bot: bool
    """Whether it is one of the bot's own answers (then quoted as the assistant's words)."""
    content: str
    """Its text, with its text files read in, cut to MAX_INPUT_CHARS."""
    images: NotRequired[list[Attachment]]
    """Its images (set only when there are some)."""


class Job(TypedDict):
    """A user's message waiting for an answer; its id is the Discord message id."""

    id: str
    user_id: str
    channel_id: str
    guild_id: str | None
    content: str
    enqueued_at: float
    attempts: int
    # Where its history lives and which lane it waits in (shared/queues/conversation_ids.py); jobs queued before
    # conversations existed have neither, and belong to their author's conversation in their channel.
    conversation: NotRequired[str]
    lane: NotRequired[str]
    author_name: NotRequired[str]
    """The author's display name, carried in shared conversations only (the model sees who speaks)."""
    model: NotRequired[str]
    """The model that answers it, decided by the bot when it queued it; a job queued before there were several
    models names none (any runner answers it)."""
    interaction: NotRequired[InteractionRef]
    """Set for a question asked with `/ask` (its id is then the interaction's id, and no message of the user's
    exists to reply or react to)."""
    system_prompt: NotRequired[str]
    """The persona of its server or channel (shared/stores/personas.py), with `{date}` and `{server}` still to
    fill; absent where none is set (the runner's SYSTEM_PROMPT applies)."""
    server_name: NotRequired[str]
    """Its server's name, carried with a persona only (what `{server}` is filled with)."""
    unavailable_told: NotRequired[bool]
    """Set once its user was told that its model is not served right now (told once only)."""
    images: NotRequired[list[Attachment]]
    """The message's images, at most MAX_IMAGES (set only when there are some: an empty list would come back from a
    Lua script's JSON as an object)."""
    quoted: NotRequired[Quoted]
    """The message it replies to, when that is the bot's answer or an opted-in person's message."""
    forgets: NotRequired[int]
    """Its user's `!forget` count when Redis accepted it, set by enqueue.lua (never by the bot) once they have one;
    absent reads as 0. Completion stores nothing of it if they have forgotten since."""
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
    interaction: NotRequired[InteractionRef]
    """The job's interaction, for an `/ask` answer."""
    notes: NotRequired[list[str]]
    """One-line notes shown above an answer as Discord subtext (`-# ...`): images the model could not see, an image
    that could not be fetched. Set only when there are some."""
    fresh: NotRequired[bool]
    """True when nothing of the job can be on Discord yet (no partial was noticed, no updater held it), so the
    updater posts it without reading its posted record or taking its lock; absent means "maybe"."""


_JOB_FIELDS: dict[str, type] = {"id": str, "user_id": str, "channel_id": str, "content": str, "attempts": int}
_RESPONSE_FIELDS: dict[str, type] = {"job_id": str, "user_id": str, "channel_id": str, "kind": str, "content": str}


def encode(payload: Job | Response | Turn) -> str:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), default=_reveal)


def _reveal(value: object) -> str:
    """Secrets (interaction tokens) are written out in the payloads stored in Redis, and only there."""
    if isinstance(value, Secret):
        return value.reveal()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def decode_job(raw: str | bytes) -> Job:
    return cast(Job, _with_interaction(_decode(raw, _JOB_FIELDS, "job"), "job"))


def decode_response(raw: str | bytes) -> Response:
    return cast(Response, _with_interaction(_decode(raw, _RESPONSE_FIELDS, "response"), "response"))


def _with_interaction(data: dict[str, object], what: str) -> dict[str, object]:
    """Wraps an interaction's token back into a Secret, so that no repr or log line of the payload shows it."""
    interaction = data.get("interaction")
    if interaction is None:
        return data
    if not (
        isinstance(interaction, dict)
        and isinstance(interaction.get("token"), str)
        and isinstance(interaction.get("application_id"), str)
        and isinstance(interaction.get("expires_at"), int | float)
    ):
        raise JobPayloadError(f"{what} payload has no valid 'interaction'")
    data["interaction"] = {**interaction, "token": Secret(interaction["token"])}
    return data


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
