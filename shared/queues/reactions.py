"""The acknowledgements a user's message gets: the bot adds the first when it queues it, an updater swaps it for the
second when a runner starts on it."""

WAITING_EMOJI = "⏳"
"""Your message is queued and waits for its turn."""
TAKEN_EMOJI = "👀"
"""A runner is answering your message."""
