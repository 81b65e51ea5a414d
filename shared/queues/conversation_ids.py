"""Which conversation a message belongs to, and which lane it waits in: the ids, built in this one place.

A conversation is the unit of history: a user's own per channel (a DM and every thread are channels), or one
shared thread the bot opened for everyone in it. A lane is the unit of order: the messages of one lane are
answered one at a time, in the order sent. A user's private conversations share the user's lane (so one person
holds one place in the queue wherever they write); a shared thread is a lane of its own, for all its speakers.
"""

from __future__ import annotations

from shared.queues.schemas import Job

SHARED_PREFIX = "thread:"


def private_conversation(channel_id: str, user_id: str) -> str:
    """A user's own conversation in one channel: nobody else's turns, and no other channel's."""
    return f"channel:{channel_id}:user:{user_id}"


def shared_conversation(thread_id: str) -> str:
    """The conversation of a thread the bot opened for several people."""
    return f"{SHARED_PREFIX}{thread_id}"


def is_shared(conversation: str) -> bool:
    return conversation.startswith(SHARED_PREFIX)


def thread_of(conversation: str) -> str:
    """The thread id of a shared conversation."""
    if not is_shared(conversation):
        raise ValueError(f"{conversation!r} is not a shared conversation")
    return conversation.removeprefix(SHARED_PREFIX)


def lane_of(conversation: str, user_id: str) -> str:
    """A shared thread is its own lane; a user's private conversations all wait in the user's lane."""
    return conversation if is_shared(conversation) else user_id


def job_conversation(job: Job) -> str:
    """Jobs queued before conversations existed carry none: theirs is the author's in the job's channel."""
    return job.get("conversation") or private_conversation(job["channel_id"], job["user_id"])


def job_lane(job: Job) -> str:
    """The Lua scripts read the same field with the same fallback (`job['lane'] or job['user_id']`)."""
    return job.get("lane") or job["user_id"]


def job_model(job: Job) -> str | None:
    """The model the bot routed a job to; jobs queued before there were several models name none, and wait on the
    legacy queue that every runner drains."""
    return job.get("model") or None
