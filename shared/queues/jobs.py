"""Building a job: the one function the bot, `/ask`, the tests and the benchmarks make jobs with."""

from __future__ import annotations

import time

from shared.queues.conversation_ids import private_conversation
from shared.queues.schemas import Job


def new_job(
    job_id: str,
    user_id: str,
    channel_id: str,
    content: str,
    *,
    guild_id: str | None,
    conversation: str | None = None,
    lane: str | None = None,
    model: str | None = None,
) -> Job:
    """A job as it is queued, no attempt made yet: in the user's own conversation in the channel, waiting in the
    user's lane, unless a shared thread's are given; `model` None leaves it to any runner (a model none serves)."""
    job: Job = {
        "id": job_id,
        "user_id": user_id,
        "channel_id": channel_id,
        "guild_id": guild_id,
        "content": content,
        "enqueued_at": time.time(),
        "attempts": 0,
        "conversation": conversation or private_conversation(channel_id, user_id),
        "lane": lane or user_id,
    }
    if model is not None:
        job["model"] = model
    return job
