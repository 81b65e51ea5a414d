"""Timings and limits that are not settings, each with its unit in the name (settings declare their own)."""

from shared.settings import Settings

DEFAULT_BLOCK_TIMEOUT_S = 2.0
"""Longest a blocking Redis call waits, so that loops notice shutdown."""

DEFAULT_POSTED_TTL_S = 7 * 24 * 3600
"""How long the record of a posted answer is kept for de-duplication."""

DEFAULT_SEEN_TTL_S = 24 * 3600
"""How long a message id is remembered so that a gateway replay is not queued twice."""

DISCORD_MESSAGE_LIMIT_CHARS = 2000
"""Discord refuses message content longer than this."""

# Until shared/job_queue.py's QueuePolicy stops naming them: read from the declarations, never restated.
_DECLARED = Settings()
DEFAULT_MAX_PENDING_PER_USER = _DECLARED.max_pending_per_user
DEFAULT_RATE_LIMIT_PER_MINUTE = _DECLARED.rate_limit_per_minute
DEFAULT_MAX_ATTEMPTS = _DECLARED.max_attempts
DEFAULT_HISTORY_MAX_TURNS = _DECLARED.history_max_turns
DEFAULT_HISTORY_TTL_DAYS = _DECLARED.history_ttl_days
