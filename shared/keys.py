"""Every Redis key the project uses, built in this one place.

All keys share one hash tag (`{llamabot}`) so that every Lua script also runs on Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_NAMESPACE = "llamabot"


@dataclass(frozen=True)
class Keys:
    """Key builders for one deployment; `namespace` lets several bots share one Redis."""

    namespace: str = DEFAULT_NAMESPACE

    @property
    def prefix(self) -> str:
        return "{" + self.namespace + "}:"

    # Per-user keys: everything stored about a user has the user id as its last part.
    def history(self, user_id: str) -> str:
        return f"{self.prefix}history:{user_id}"

    def inflight(self, user_id: str) -> str:
        return f"{self.prefix}inflight:{user_id}"

    def pending(self, user_id: str) -> str:
        return f"{self.prefix}pending:{user_id}"

    def seen(self, user_id: str) -> str:
        """Message ids of the user already accepted, so a gateway replay is not queued twice."""
        return f"{self.prefix}seen:{user_id}"

    def rate(self, user_id: str) -> str:
        """Count of the user's messages accepted in the current minute."""
        return f"{self.prefix}rate:{user_id}"

    def user_keys(self, user_id: str) -> list[str]:
        """Every key that holds data about one user (what `!optout` erases)."""
        return [
            self.history(user_id),
            self.inflight(user_id),
            self.pending(user_id),
            self.seen(user_id),
            self.rate(user_id),
        ]

    # Shared keys.
    @property
    def optin(self) -> str:
        return f"{self.prefix}optin"

    @property
    def query(self) -> str:
        return f"{self.prefix}query"

    @property
    def response(self) -> str:
        return f"{self.prefix}response"

    @property
    def dead(self) -> str:
        return f"{self.prefix}dead"

    # Workers: runners and updaters register, heartbeat and hold claimed work in their own list.
    def workers(self, role: str) -> str:
        """Set of ids of live-or-not-yet-reaped workers of a role ("runner" or "updater")."""
        return f"{self.prefix}{role}s"

    def heartbeat(self, role: str, worker_id: str) -> str:
        return f"{self.prefix}{role}:{worker_id}"

    def processing(self, worker_id: str) -> str:
        """Jobs a runner has claimed."""
        return f"{self.prefix}processing:{worker_id}"

    def posting(self, worker_id: str) -> str:
        """Responses an updater has claimed."""
        return f"{self.prefix}posting:{worker_id}"

    def posted(self, job_id: str) -> str:
        """Discord message ids already posted for a job (hash: part index -> message id)."""
        return f"{self.prefix}posted:{job_id}"

    # Templates that Lua scripts complete with a user id (keys they cannot know in advance).
    @property
    def inflight_prefix(self) -> str:
        return self.inflight("")

    @property
    def pending_prefix(self) -> str:
        return self.pending("")

    @property
    def history_prefix(self) -> str:
        return self.history("")
