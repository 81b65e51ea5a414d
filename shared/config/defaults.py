"""Timings and limits that are not settings, each with its unit in the name (settings declare their own)."""

DEFAULT_BLOCK_TIMEOUT_S = 2.0
"""Longest a blocking Redis call waits, so that loops notice shutdown."""

DEFAULT_POSTED_TTL_S = 7 * 24 * 3600
"""How long the record of a posted answer is kept for de-duplication."""

DEFAULT_SEEN_TTL_S = 24 * 3600
"""How long a message id is remembered so that a gateway replay is not queued twice."""

STREAM_TTL_S = 3600
"""How long a job's partial text (stream:{job}) outlives its last update, should its runner die and nobody finish it."""

DISCORD_MESSAGE_LIMIT_CHARS = 2000
"""Discord refuses message content longer than this."""

STALE_RETRIES = 5
"""Tries of a script whose keys the caller read just before, when what it read changed meanwhile."""
