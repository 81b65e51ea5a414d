"""What a failed request to an OpenAI-compatible server means for its job: wait the server out, retry a few times,
or fail the job; each with one line that says why and never shows the API key."""

from __future__ import annotations

import enum
from dataclasses import dataclass

import openai

MESSAGE_CHARS = 200
"""Longest part of a server's error message kept in a log line or a failed job's error."""
HIDDEN_KEY = "**********"


class FaultKind(enum.Enum):
    UNAVAILABLE = "unavailable"
    """The server cannot be used for now (unreachable, timed out, refusing the key, rate-limiting): not the job's
    fault, so the job is kept and retried until the server answers, and no attempt is counted."""
    SERVER_ERROR = "server error"
    """The server failed while answering (5xx, 408, an error inside the stream): retried a few times, then the
    job fails."""
    REFUSED = "refused"
    """The server refused this request (4xx: context too long, a bad request, an unknown model): the job fails."""


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    reason: str
    """What the server did, in one line after its URL, e.g. "is unreachable (ConnectError)"; never the key."""
    status: int | None = None


class IncompleteAnswer(Exception):
    """The stream ended without the server saying the answer was finished."""


def classify(exc: openai.APIError | IncompleteAnswer, model: str, api_key: str) -> Fault:
    if isinstance(exc, openai.APIStatusError):
        return _status_fault(exc, model, api_key)
    if isinstance(exc, openai.APITimeoutError):
        return Fault(FaultKind.UNAVAILABLE, "did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__
        return Fault(FaultKind.UNAVAILABLE, f"is unreachable ({type(cause).__name__ if cause else 'no connection'})")
    if isinstance(exc, IncompleteAnswer):
        return Fault(FaultKind.SERVER_ERROR, "ended the stream before the answer")
    return Fault(FaultKind.SERVER_ERROR, f"sent an error inside the answer: {server_message(exc, api_key)}")


def _status_fault(exc: openai.APIStatusError, model: str, api_key: str) -> Fault:
    status = exc.status_code
    if status in (401, 403):
        # Never the server's message here: some quote part of the key they refused.
        refused = "refused OPENAI_API_KEY" if api_key else "wants a key: set OPENAI_API_KEY"
        return Fault(FaultKind.UNAVAILABLE, f"{refused} (HTTP {status})", status)
    message = server_message(exc, api_key)
    if status == 429:
        kind, reason = FaultKind.UNAVAILABLE, f"is rate-limiting (HTTP 429: {message})"
    elif status == 408 or status >= 500:
        kind, reason = FaultKind.SERVER_ERROR, f"failed (HTTP {status}: {message})"
    elif status == 404:
        kind, reason = FaultKind.REFUSED, f"does not serve model {model!r} (HTTP 404: {message})"
    else:
        kind, reason = FaultKind.REFUSED, f"refused the request (HTTP {status}: {message})"
    return Fault(kind, reason, status)


def server_message(exc: openai.APIError, api_key: str) -> str:
    """The server's own words, first line, shortened; OpenAI's, FastAPI's and Ollama's error bodies differ."""
    body = exc.body
    found: object = body
    if isinstance(body, dict):
        found = body.get("error", body.get("detail", body.get("message")))
        if isinstance(found, dict):
            found = found.get("message")
        elif isinstance(found, list):
            # FastAPI's validation errors: only their messages, since their `input` may quote the conversation.
            found = "; ".join(str(item.get("msg", "")) for item in found if isinstance(item, dict))
    text = found if isinstance(found, str) and found.strip() else exc.message
    lines = text.strip().splitlines()
    line = lines[0][:MESSAGE_CHARS] if lines else ""
    return line.replace(api_key, HIDDEN_KEY) if api_key else line
