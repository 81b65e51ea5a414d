"""What the bot says on first contact (the consent prompt and its buttons), about model routing, and for
`!access`: texts kept apart from bot/texts.py, which holds the rest."""

from __future__ import annotations

from collections.abc import Sequence

from bot.texts import plural

OPT_IN_LABEL = "Opt in"
NO_THANKS_LABEL = "No thanks"

NOT_YOURS = "This isn't for you: only the person I asked can answer it. (Say my name to get your own.)"


def _days(ttl_days: float) -> str:
    if ttl_days <= 0:
        return "until you ask me to forget it"
    days = f"{ttl_days:g}"
    return f"for {days} day{'' if days == '1' else 's'} after our last exchange, or until you ask me to forget it"


def consent_prompt_text(user_id: int, prefix: str, history_ttl_days: float) -> str:
    """The prompt someone who has not opted in gets when they address the bot (it mentions them without a ping)."""
    return (
        f"<@{user_id}> I only answer people who opted in. If you do, I keep your messages to me and my answers, "
        f"per channel, {_days(history_ttl_days)} (`{prefix}forget`); `{prefix}optout` erases everything, any time. "
        f"Until you choose, nothing about you is stored."
    )


def consent_accepted_text(prefix: str, *, answering: bool) -> str:
    """The prompt, once its person pressed Opt in."""
    if answering:
        return f"You're opted in: answering your message now. (`{prefix}optout` any time.)"
    return (
        f"You're opted in. I no longer have the message you sent before (I keep it only a few minutes, and only in "
        f"memory): please send it again. (`{prefix}optout` any time.)"
    )


def answered_instead_text(chosen: str, answering: str | None, prefix: str, *, in_thread: bool) -> str:
    """Said with each message routed to another model because the chosen one has no runner now."""
    whose = "the model chosen for this thread" if in_thread else "your chosen model"
    instead = f"`{answering}` is answering instead" if answering else "another model is answering instead"
    return f"`{chosen}`, {whose}, isn't being served right now, so {instead} (`{prefix}models` lists those served)."


# ---- !access -------------------------------------------------------------------------------------------------

LISTED_ROLES = 20


def _role_list(role_ids: Sequence[str]) -> str:
    shown = ", ".join(f"<@&{role}>" for role in role_ids[:LISTED_ROLES])
    more = len(role_ids) - LISTED_ROLES
    return shown + (f" and {more} more" if more > 0 else "")


def access_usage_text(prefix: str) -> str:
    return (
        f"Usage: `{prefix}access role allow @role`, `{prefix}access role deny @role`, `{prefix}access role list`, "
        f"`{prefix}access role reset`. With roles allowed, I answer only members holding one of them "
        "(administrators always)."
    )


def access_where_text(prefix: str) -> str:
    return f"`{prefix}access` sets who I answer in a server: use it in one of the server's channels."


UNKNOWN_ROLE = "I can't find that role in this server: mention one of its roles, like @Members."


def access_list_text(role_ids: Sequence[str]) -> str:
    if not role_ids:
        return "I answer every member here (who opted in): no roles are set."
    return f"I answer only members holding {_role_list(role_ids)} here (administrators always)."


def role_allowed_text(role_id: str, newly: bool, role_ids: Sequence[str]) -> str:
    done = "Done" if newly else f"<@&{role_id}> was already allowed"
    return f"{done}: I answer only members holding {_role_list(role_ids)} here (administrators always)."


def role_denied_text(role_id: str, removed: bool, left: int) -> str:
    if not removed:
        return f"<@&{role_id}> wasn't on the list, so nothing changed."
    if left == 0:
        return f"Done: <@&{role_id}> was the last role on the list, so I answer every member here again."
    return f"Done: members holding only <@&{role_id}> no longer get answers; {plural(left, 'role')} still allowed."


def access_reset_text(removed: int) -> str:
    if removed == 0:
        return "There was no role list: I already answer every member here."
    return f"Done: the list of {plural(removed, 'role')} is gone, and I answer every member here again."
