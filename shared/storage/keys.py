"""Every Redis key the project uses, built in this one place.

All keys share one hash tag (`{llamabot}`), and every key a Lua script touches is passed to it in KEYS (never
built inside a script), so that every script also runs on Redis Cluster.
"""

from __future__ import annotations

from dataclasses import dataclass

from shared.queues.model_names import is_model_name

DEFAULT_NAMESPACE = "llamabot"


@dataclass(frozen=True)
class Keys:
    """Key builders for one deployment; `namespace` lets several bots share one Redis."""

    namespace: str = DEFAULT_NAMESPACE

    @property
    def prefix(self) -> str:
        return "{" + self.namespace + "}:"

    # Per-user keys: everything stored about a user alone has the user id as its last part.
    def conversations(self, user_id: str) -> str:
        """Set of the conversations the user has turns or waiting messages in (what `!forget`/`!optout` clean)."""
        return f"{self.prefix}conversations:{user_id}"

    def seen(self, user_id: str) -> str:
        """Message ids of the user already accepted, so a gateway replay is not queued twice."""
        return f"{self.prefix}seen:{user_id}"

    def rate(self, user_id: str) -> str:
        """Count of the user's messages accepted in the current minute."""
        return f"{self.prefix}rate:{user_id}"

    def choice(self, user_id: str) -> str:
        """The model the user chose to answer them (a string)."""
        return f"{self.prefix}choice:{user_id}"

    def hinted(self, user_id: str) -> str:
        """Channels where the user was told lately that the bot does not answer there (sorted set: channel id ->
        when), so that the hint comes at most once an hour per channel."""
        return f"{self.prefix}hinted:{user_id}"

    def forgets(self, user_id: str) -> str:
        """How many times the user has used `!forget` (a counter, kept until `!optout`): each job carries the count
        it was accepted under, and an exchange begun before a forget is not stored after it (complete.lua)."""
        return f"{self.prefix}forgets:{user_id}"

    def user_keys(self, user_id: str) -> list[str]:
        """The keys about one user alone, besides their conversations' (what `!optout` deletes outright); the
        index of their conversations comes first."""
        return [
            self.conversations(user_id),
            self.inflight(user_id),
            self.pending(user_id),
            self.seen(user_id),
            self.rate(user_id),
            self.choice(user_id),
            self.hinted(user_id),
            self.forgets(user_id),
        ]

    # Conversations and lanes (ids from shared/queues/conversation_ids.py). A private conversation's id ends with its
    # user's id, and so does the lane of a user's private messages: both are named after the user.
    def history(self, conversation: str) -> str:
        """A conversation's turns, as one JSON string (so that a runner reads a batch's histories with one MGET)."""
        return f"{self.prefix}history:{conversation}"

    def inflight(self, lane: str) -> str:
        """Id of the lane's message being answered (or on the queue)."""
        return f"{self.prefix}inflight:{lane}"

    def pending(self, lane: str) -> str:
        """The lane's messages waiting for their turn, oldest first."""
        return f"{self.prefix}pending:{lane}"

    def thread(self, thread_id: str) -> str:
        """A thread the bot opened as a shared conversation (hash: guild, parent channel, starter)."""
        return f"{self.prefix}thread:{thread_id}"

    # Shared keys.
    @property
    def optin(self) -> str:
        return f"{self.prefix}optin"

    def query(self, model: str) -> str:
        """Jobs ready to run for one model, claimed from the right by the runners serving it."""
        if not is_model_name(model):
            raise ValueError(f"not a model name: {model[:80]!r}")
        return f"{self.prefix}query:{model}"

    @property
    def legacy_query(self) -> str:
        """The one queue of versions before there were several models: its jobs name no model, and every runner
        drains it (after its own model's queue)."""
        return f"{self.prefix}query"

    @property
    def models(self) -> str:
        """Set of every model a job was queued for or a runner served; nothing removes one, so the queues of its
        members are every queue that may hold a job (scripts that move jobs are given them all)."""
        return f"{self.prefix}models"

    def server(self, guild_id: str) -> str:
        """A server's settings (hash: default_model; persona and persona:<channel> (shared/stores/personas.py);
        allow:<channel> and their count, allowed_channels (shared/stores/channel_access.py))."""
        return f"{self.prefix}server:{guild_id}"

    def commands_synced(self, scope: str) -> str:
        """Digest of the slash commands last synced to a scope ("global" or a server id): the bot syncs again only
        when they change (Discord rate-limits syncing)."""
        return f"{self.prefix}commands-synced:{scope}"

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
        """What of a job's answer is on Discord (hash: part index -> message id, "d<index>" -> digest of the text
        it shows, "final" once the final text is there)."""
        return f"{self.prefix}posted:{job_id}"

    def stream(self, job_id: str) -> str:
        """The newest partial text of a job being generated (hash: text, noticed), replaced in place."""
        return f"{self.prefix}stream:{job_id}"

    def posting_lock(self, job_id: str) -> str:
        """Held (by an updater's id, with a TTL) while a job's messages are being posted or edited."""
        return f"{self.prefix}posting-lock:{job_id}"

    def legacy_history_pattern(self) -> str:
        """SCAN pattern of the per-user histories kept before conversations were per channel (`history:{user}`)."""
        return f"{self.prefix}history:[0-9]*"
