"""Everything the bot says to people, in one place, so that its wording is reviewed and changed together."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence

from shared.stores.model_choice import Route
from shared.stores.queue_inspection import QueueStats
from shared.stores.waiting_status import WaitingStatus

EMPTY_QUESTION = 'Yes? Ask me something after my name, e.g. "Hey Llama, what\'s a llama?"'

BUSY = "I can't reach my message queue right now, so I can't take your message. Please try again in a minute."

ADMINS_ONLY = "Only server administrators can use that command."


def stats_text(s: QueueStats) -> str:
    """`!stats`: the queue figures, waiting messages and live runners per model."""
    waiting = []
    for model, count in s.waiting_per_model.items():
        served = "" if not model or model in s.runners_per_model else ", no runner"
        waiting.append(f"`{model or 'any'}` {count}{served}")
    runners = [f"`{model}` {count}" for model, count in s.runners_per_model.items()]
    return (
        f"Queue: {s.waiting} waiting{_listed(waiting)}, {s.processing} being answered; "
        f"{s.runners} live runners{_listed(runners)}; {s.responses} answers being posted, {s.dead} failed. "
        f"{s.opted_in} users opted in."
    )


def _listed(parts: list[str]) -> str:
    return f" ({'; '.join(parts)})" if parts else ""


def wake(wake_words: Sequence[str]) -> str:
    return wake_words[0].capitalize()


def help_text(prefix: str, wake_words: Sequence[str]) -> str:
    model_default = "/model-default <name>" if prefix == "/" else f"{prefix}model default <name>"
    slash = (
        "`/ask <question>` — ask me without writing a message (the channel sees my answer)."
        if prefix == "/"
        else "Every command also works as a slash command (`/optin`, `/model`, …), and `/ask <question>` asks me "
        "without writing a message."
    )
    return (
        "**Hi! I'm a chat bot running a Llama-family model on this server's own hardware.**\n"
        f"I ignore everyone until they opt in. `{prefix}optin` — let me answer you "
        "(your messages to me and my answers are stored as your conversation history, per channel).\n"
        f'Then talk to me by starting a message with "Hey {wake(wake_words)}, …", by @mentioning me, '
        "by replying to one of my messages, or in a DM. What you say in one channel stays in that channel.\n"
        f"`{prefix}chat [topic]` — open a thread where everyone who opted in talks with me together, "
        "no need to say my name.\n"
        f"`{prefix}models` — the models answering now; `{prefix}model <name>` — choose the one that answers you; "
        f"`{prefix}model` — which one does, and why.\n"
        f"`{prefix}status` — where your waiting messages stand.\n"
        f"`{prefix}forget` — erase our conversations (and your messages in shared threads); you stay opted in.\n"
        f"`{prefix}optout` — stop, and erase everything I stored about you.\n"
        f"`{prefix}help` — this message.\n"
        f"`{prefix}persona show` — the system prompt I follow here.\n"
        f"Administrators: `{model_default}` (this server's default model), "
        f"`{prefix}persona set|reset [#channel] [text]` (the server's or a channel's persona), "
        f"`{prefix}channels allow|deny|list|reset [#channel]` (where I answer), "
        f"`{prefix}access role allow|deny|list|reset [@role]` (whom I answer), `{prefix}stats` "
        f"(queue figures), `{prefix}dead` (failed messages), `{prefix}replay <id>` (retry a failed message).\n" + slash
    )


def optin_text(prefix: str, wake_words: Sequence[str], newly: bool) -> str:
    start = "You're opted in." if newly else "You were already opted in."
    return (
        f'{start} Say "Hey {wake(wake_words)}, …", mention me, reply to me or DM me. '
        f"`{prefix}forget` clears our history; `{prefix}optout` stops me and erases your data."
    )


def optout_text(was_in: bool) -> str:
    if was_in:
        return "You're opted out, and everything I stored about you has been erased."
    return "You weren't opted in, so nothing is stored about you."


def forget_text(opted_in: bool, had_history: bool) -> str:
    if not opted_in:
        return "You aren't opted in, so I store nothing about you."
    if had_history:
        return "Done: I've forgotten our conversations, and your messages in shared threads."
    return "Done: there was no conversation stored to forget, and nothing I'm still answering will be kept."


def status_text(status: WaitingStatus) -> str:
    """`!status`: where each of the user's waiting messages stands, and a rough wait at the recent pace."""
    if not status.lanes:
        return "Nothing of yours is waiting: I've answered everything you sent me."
    pace = status.answered_last_minute
    lines = []
    for lane in status.lanes:
        where = "In a shared thread" if lane.shared else "Your messages"
        if not status.served(lane):
            lines.append(f"{where}: waiting for `{lane.model}`, which isn't being served right now.")
            continue
        if lane.answering and not lane.before_mine and lane.mine_waiting == 0:
            lines.append(f"{where}: I'm writing my answer now.")
            continue
        parts = []
        if lane.answering:
            parts.append("I'm answering one now")
        elif lane.ahead_in_queue:
            parts.append(f"{plural(lane.ahead_in_queue, 'message')} of others are ahead in the queue")
        else:
            parts.append("next in the queue")
        if lane.before_mine:
            parts.append(f"{plural(lane.before_mine, 'earlier message')} of the thread go first")
        if lane.mine_waiting:
            parts.append(f"{plural(lane.mine_waiting, 'message')} of yours waiting, answered in order")
        wait = status.rough_wait_s(lane)
        guess = f" (roughly {_duration(wait)} at the recent pace)" if wait is not None else ""
        lines.append(f"{where}: {'; '.join(parts)}{guess}.")
    if not pace and any(status.served(lane) for lane in status.lanes):
        lines.append("No answers in the last minute to estimate a wait from.")
    return "\n".join(lines)


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(5, round(seconds / 5) * 5)} seconds"
    return f"{round(seconds / 60)} minutes"


def full_text(waiting: int) -> str:
    return (
        f"You already have {waiting} messages waiting for an answer. "
        "Please wait for my replies before sending more; I haven't queued this one."
    )


def lane_full_text(waiting: int) -> str:
    return (
        f"{waiting} messages in this thread are already waiting for an answer. "
        "Please wait for my replies before sending more; I haven't queued this one."
    )


def rate_limited_text(sent: int) -> str:
    return (
        f"You're sending messages faster than I can answer ({sent} this minute). "
        "Please slow down; I haven't queued this one."
    )


def truncated_text(max_chars: int) -> str:
    return f"Your message is long, so I only read its first {max_chars} characters."


# ---- Shared threads (`!chat`) ---------------------------------------------------------------------------------


def chat_needs_optin_text(prefix: str) -> str:
    return f"Opt in first with `{prefix}optin`: I only open threads for people who let me answer them."


def chat_where_text(prefix: str) -> str:
    return f"`{prefix}chat` opens a thread in a server channel: use it in one of the server's text channels."


def chat_not_here_text(prefix: str) -> str:
    return (
        f"I don't answer in this channel, so I'd stay silent in a thread opened here: use `{prefix}chat` in a "
        "channel where I answer."
    )


CHAT_NO_PERMISSION = "I can't open a thread here: I need the Create Public Threads permission in this channel."


def chat_greeting(prefix: str, starter: str) -> str:
    return (
        f"**{starter} opened this thread to talk with me together.** Everyone here who has opted in "
        f"(`{prefix}optin`) can just write: no need to say my name. I see this thread's conversation and who said "
        f"what, and I answer messages in the order they come. I ignore people who haven't opted in. "
        f"`{prefix}forget` erases your messages here (and everywhere else)."
    )


def chat_opened_text(thread_mention: str) -> str:
    return f"I've opened {thread_mention}: everyone who opted in can talk with me there."


# ---- Models (`!models`, `!model`) -----------------------------------------------------------------------------


def _names(models: Sequence[str]) -> str:
    return ", ".join(f"`{model}`" for model in models)


def _why(route: Route, in_thread: bool) -> str:
    """Why a route's model answers: whose choice or which default."""
    if route.reason == "choice":
        return "the choice of whoever opened this thread" if in_thread else "your choice"
    if route.reason == "server_default":
        return "this server's default"
    return "the default"


def answered_by_text(route: Route, prefix: str, *, in_thread: bool) -> str:
    """`!model`: which model answers the caller's messages here, and why."""
    where = "Messages in this thread" if in_thread else "Your messages here"
    if route.model is None:
        return f"No model is being served right now: {where.lower()} wait until a runner starts."
    if not route.served:
        return (
            f"No model is being served right now: {where.lower()} wait for `{route.model}` "
            f"({_why(route, in_thread)}) to be back."
        )
    text = f"{where} are answered by `{route.model}`, {_why(route, in_thread)}."
    if route.unserved_choice:
        whose = "The choice of whoever opened this thread" if in_thread else "Your choice"
        text = f"{whose}, `{route.unserved_choice}`, isn't being served right now. {text}"
    elif route.reason != "choice" and not in_thread:
        text += f" `{prefix}model <name>` chooses another (see `{prefix}models`)."
    return text


def models_text(
    served: Mapping[str, int],
    route: Route,
    choice: str | None,
    server_default: str | None,
    prefix: str,
    *,
    seeing: Collection[str] = (),
) -> str:
    """`!models`: the models served now, how many runners each, which see images, marking the caller's choice and the
    defaults."""
    if not served:
        return "No model is being served right now: messages wait until a runner starts."
    lines = ["**Models being served now:**"]
    for model, runners in served.items():
        marks = []
        if model == choice:
            marks.append("your choice")
        if model == server_default:
            marks.append("this server's default")
        if model == route.model and route.reason in ("bot_default", "only", "first"):
            marks.append("the default")
        sees = ", sees images" if model in seeing else ""
        lines.append(f"• `{model}`: {plural(runners, 'runner')}{sees}" + (f" ({', '.join(marks)})" if marks else ""))
    lines.append(f"`{prefix}model <name>` chooses the one that answers you; `{prefix}model` says which does.")
    return "\n".join(lines)


def not_served_text(name: str, served: Sequence[str]) -> str:
    """A model name nobody serves, refused with those that are."""
    if not served:
        return f"No model called `{name}` is being served right now; in fact none is, so there is nothing to choose."
    return f"No model called `{name}` is being served right now. Served now: {_names(served)}."


def model_chosen_text(model: str, moved: int) -> str:
    text = f"Done: `{model}` answers you from now on."
    if moved:
        text += f" I moved {plural(moved, 'waiting message')} of yours to it."
    return text


def model_needs_optin_text(prefix: str) -> str:
    return f"Opt in first with `{prefix}optin`: I only store a choice for people who let me answer them."


def server_default_where_text(prefix: str) -> str:
    return f"`{prefix}model default <name>` sets a server's default model: use it in one of the server's channels."


def server_default_set_text(model: str) -> str:
    return f"Done: `{model}` is now this server's default model, for everyone who hasn't chosen one."


def server_default_text(server_default: str | None, served: Mapping[str, int], route: Route, prefix: str) -> str:
    """`!model default` without a name: the server's default model, and whether it is served; else what answers
    people who have not chosen one."""
    if server_default is None:
        fallback = f" People who haven't chosen one get `{route.model}`." if route.model else ""
        return f"This server has no default model (`{prefix}model default <name>` sets one).{fallback}"
    if server_default not in served:
        return f"This server's default model is `{server_default}`, which isn't being served right now."
    return f"This server's default model is `{server_default}`."


def model_unavailable_text(model: str, prefix: str, *, in_thread: bool) -> str:
    """Told once to someone whose message waits for a model nobody serves now."""
    text = (
        f"The model `{model}` isn't being served right now, so this message waits for it: "
        "I'll answer it when it's back."
    )
    if not in_thread:
        text += f" Or choose another with `{prefix}model <name>` (see `{prefix}models`) and I'll move it there."
    return text


# ---- Slash commands --------------------------------------------------------------------------------------------

SLASH_DESCRIPTIONS = {
    "optin": "Let me answer you (your conversation with me is kept per channel).",
    "optout": "Stop me answering you, and erase everything I stored about you.",
    "forget": "Erase our conversations; you stay opted in.",
    "help": "What I do and how to talk to me.",
    "status": "Where your waiting messages stand.",
    "chat": "Open a thread where everyone who opted in talks with me together.",
    "models": "The models answering now.",
    "model": "Choose the model that answers you (without a name: which one does, and why).",
    "model-default": "Administrators: this server's default model (without a name: which it is).",
    "stats": "Administrators: queue figures.",
    "dead": "Administrators: the newest failed messages.",
    "replay": "Administrators: retry a failed message.",
    "ask": "Ask me something; the channel sees my answer.",
    "persona": "The system prompt I follow in this server or channel.",
    "persona.show": "The system prompt I follow here, and where it comes from.",
    "persona.set": "Administrators: this server's system prompt, or one channel's (and its threads').",
    "persona.reset": "Administrators: remove this server's system prompt, or one channel's.",
    "channels": "Administrators: where I answer in this server.",
    "channels.allow": "Answer in this channel (once any is allowed, only in the allowed ones).",
    "channels.deny": "Stop answering in this channel (take it off the allowed ones).",
    "channels.list": "The channels I answer in.",
    "channels.reset": "Answer in every channel again.",
    "access": "Administrators: who I answer in this server.",
    "access.role": "Answer only members holding certain roles.",
    "access.role.allow": "Answer members holding this role (once any is allowed, only those).",
    "access.role.deny": "Take this role off the allowed ones.",
    "access.role.list": "The roles I answer.",
    "access.role.reset": "Answer every member again.",
}
"""What Discord shows under each slash command's name (100 characters at most)."""

SLASH_OPTIONS = {
    "chat.topic": "What the thread is about (its name).",
    "model.name": "A model being served now.",
    "replay.id": "The id `/dead` lists.",
    "ask.question": "Your question.",
    "persona.text": "The system prompt; {date} and {server} are filled in when I answer.",
    "channel": "A channel of this server (its threads follow it).",
    "role": "A role of this server.",
}
"""What Discord shows for each slash command option."""

DONE = "Done."
"""A slash command's answer when the command said nothing itself."""

EMPTY_ASK = "Yes? Ask me something: `/ask question: what's a llama?`"


def ask_needs_optin_text() -> str:
    return "I only answer people who opted in: `/optin` first (see `/help`), then ask again."


# ---- Personas (`!persona`) ------------------------------------------------------------------------------------


def persona_usage_text(prefix: str, max_chars: int) -> str:
    return (
        f"`{prefix}persona show` — the system prompt I follow here, and where it comes from. Administrators: "
        f"`{prefix}persona set [#channel] <text>` (this server's, or one channel's and its threads'; up to "
        f"{max_chars:,} characters; `{{date}}` and `{{server}}` are filled in when I answer), "
        f"`{prefix}persona reset [#channel]`."
    )


def persona_where_text(prefix: str) -> str:
    return f"`{prefix}persona` sets a server's or a channel's persona: use it in one of the server's channels."


def persona_too_long_text(length: int, max_chars: int) -> str:
    return f"That persona is {length:,} characters long; the most is {max_chars:,}. Nothing was changed."


PERSONA_EMPTY = "Write the persona after `set`, e.g. `persona set You are a pirate who loves astronomy.`"

UNKNOWN_CHANNEL = "I can't see that channel in this server: mention one of its channels, like #general."


def persona_set_text(channel_id: str | None) -> str:
    if channel_id is None:
        return "Done: that is now this server's persona, wherever no channel has its own."
    return f"Done: that is now the persona of <#{channel_id}> and its threads."


def persona_reset_text(channel_id: str | None, had_one: bool) -> str:
    where = "This server" if channel_id is None else f"<#{channel_id}>"
    if not had_one:
        return f"{where} had no persona of its own; nothing changed."
    fallback = "the default system prompt" if channel_id is None else "the server's persona, else the default"
    return f"Done: {where} has no persona of its own any more; {fallback} applies."


def _quoted(text: str, limit: int = 1800) -> str:
    """A prompt quoted as a block that shows it as written (no formatting, no mentions), cut to fit a message."""
    shown = text if len(text) <= limit else text[:limit] + "…"
    return "```\n" + shown.replace("```", "`\u200b``") + "\n```"


def persona_show_text(text: str, source: str, channel_id: str | None) -> str:
    """`!persona show`: the prompt in force here and where it comes from (source: channel, parent, server, default)."""
    where = {
        "channel": f"This channel's persona (<#{channel_id}>):",
        "parent": f"The persona of <#{channel_id}>, which this thread follows:",
        "server": "This server's persona (no channel persona here):",
        "default": "The default system prompt (`SYSTEM_PROMPT`; no persona is set here):",
    }[source]
    return f"{where}\n{_quoted(text)}"


# ---- Where the bot speaks (`!channels`) -----------------------------------------------------------------------


LISTED_CHANNELS = 20
"""Most channels a hint or a list names; the rest are counted."""


def _channel_list(channel_ids: Sequence[str]) -> str:
    shown = ", ".join(f"<#{c}>" for c in channel_ids[:LISTED_CHANNELS])
    more = len(channel_ids) - LISTED_CHANNELS
    return shown + (f" and {plural(more, 'more channel')}" if more > 0 else "")


def not_here_text(allowed: Sequence[str]) -> str:
    """The one hint an hour for someone who addresses the bot where it does not answer."""
    if not allowed:
        return "I don't answer in this channel."
    return f"I don't answer in this channel. On this server I answer in {_channel_list(allowed)}."


def no_dms_text(prefix: str) -> str:
    return (
        "I don't answer direct messages; talk to me in a server channel. "
        f"(Commands such as `{prefix}optout` still work here.)"
    )


def channels_usage_text(prefix: str) -> str:
    return (
        f"Administrators: `{prefix}channels allow #channel` (then I answer only in allowed channels and their "
        f"threads), `{prefix}channels deny #channel`, `{prefix}channels list`, `{prefix}channels reset` (answer in "
        "every channel again)."
    )


def channels_where_text(prefix: str) -> str:
    return f"`{prefix}channels` chooses where I speak in a server: use it in one of the server's channels."


def channels_list_text(allowed: Sequence[str]) -> str:
    if not allowed:
        return "I answer in every channel of this server I can see (there is no allow-list)."
    return f"I answer only in {_channel_list(allowed)} (and their threads)."


def channel_allowed_text(channel_id: str, newly: bool, allowed: Sequence[str]) -> str:
    first = f"<#{channel_id}> was already allowed." if not newly else f"Done: I answer in <#{channel_id}>."
    return f"{first} {channels_list_text(allowed)}"


def channel_denied_text(channel_id: str, removed: bool, left: int) -> str:
    if not removed:
        if left == 0:
            return "There is no allow-list here: I answer in every channel. Allow channels to limit where I speak."
        return f"<#{channel_id}> isn't on the allow-list, so I don't answer there already."
    if left == 0:
        return f"Done: <#{channel_id}> was the last allowed channel, so I answer in every channel again."
    return f"Done: I no longer answer in <#{channel_id}> ({plural(left, 'channel')} still allowed)."


def channels_reset_text(removed: int) -> str:
    if not removed:
        return "There was no allow-list: I already answer in every channel."
    return f"Done: the allow-list ({plural(removed, 'channel')}) is gone; I answer in every channel again."
