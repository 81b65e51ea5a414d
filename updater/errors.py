"""How posting to Discord fails: for now (retried) or for good (logged once, the response finished)."""

from __future__ import annotations

FINAL_STATUSES = (400, 401, 403, 404)
"""Discord answers that retrying cannot change: bad request, no access, missing permission, deleted."""


class TransientPostError(Exception):
    """Posting failed in a way that may pass (Discord 5xx, network); the response stays claimed and is retried."""


class RefusedError(Exception):
    """Discord refused a request for good (FINAL_STATUSES): logged once, and the response is finished."""

    def __init__(self, status: int) -> None:
        super().__init__(f"Discord answered {status}")
        self.status = status
