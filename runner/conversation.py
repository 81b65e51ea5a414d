"""What a job's conversation looks like to the model: the system prompt is its server's or channel's persona (with
`{date}` and `{server}` filled) or SYSTEM_PROMPT; in a shared thread, every user turn names its speaker and the
system prompt says it is a group conversation; a private conversation is passed as it is stored. A message that
replies to another has it quoted before its words, for this prompt only (history keeps the words alone)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

from shared.queues.conversation_ids import is_shared, job_conversation
from shared.queues.schemas import Job, Turn
from shared.stores.personas import fill_placeholders

GROUP_CONVERSATION_LINE = (
    "This is a group conversation in a Discord thread: each user message starts with the speaker's name and a "
    "colon. Answer the latest message; address people by name when it helps."
)


def labelled(turn: Turn) -> Turn:
    """A stored turn as the model reads it: "alice: I'd rather go to the mountains"."""
    name = turn.get("name")
    content = f"{name}: {turn['content']}" if turn["role"] == "user" and name else turn["content"]
    return {"role": turn["role"], "content": content}


def system_prompt_for(job: Job, default: str, now: datetime | None = None) -> str:
    """The job's persona with its placeholders filled at answer time (today's date in UTC), else `default`."""
    persona = job.get("system_prompt")
    if not persona:
        return default
    today = (now or datetime.now(UTC)).date()
    return fill_placeholders(persona, today=today, server=job.get("server_name"))


def with_quote(job: Job) -> str:
    """The job's words, after the message they reply to (quoted, its author named) when there is one."""
    quoted = job.get("quoted")
    if quoted is None:
        return job["content"]
    whose = "your earlier answer" if quoted["by_bot"] else f"{quoted['author']}'s message"
    lines = "\n".join(f"> {line}" if line else ">" for line in quoted["content"].splitlines() or [""])
    return f"(Replying to {whose}:)\n{lines}\n\n{job['content']}"


def model_view(job: Job, history: Sequence[Turn], default_prompt: str) -> tuple[str, list[Turn], str]:
    """(system prompt, history, message) for the job's prompt; `default_prompt` applies where no persona does."""
    system_prompt = system_prompt_for(job, default_prompt)
    if not is_shared(job_conversation(job)):
        return system_prompt, [{"role": t["role"], "content": t["content"]} for t in history], with_quote(job)
    speaker = job.get("author_name") or "someone"
    group_prompt = f"{system_prompt}\n\n{GROUP_CONVERSATION_LINE}" if system_prompt else GROUP_CONVERSATION_LINE
    return group_prompt, [labelled(turn) for turn in history], f"{speaker}: {with_quote(job)}"
