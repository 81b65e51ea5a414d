"""`!models` and `!model [default] [<name>]`: which models answer now, and choosing one (your own, or a server's
default)."""

from __future__ import annotations

from bot import texts
from bot.commands.invocation import Invocation
from bot.commands.operators import operator_scope
from bot.commands.parsing import Command
from bot.intake import may_be_shared_thread
from shared.config.settings import Settings
from shared.queues.job_queue import JobQueue
from shared.queues.model_names import parse_model_name
from shared.stores.model_choice import ModelChoices
from shared.stores.shared_threads import SharedThreads

DEFAULT_WORD = "default"
"""`!model default <name>` sets the server's default rather than the caller's choice."""


class ModelCommands:
    def __init__(self, settings: Settings, models: ModelChoices, queue: JobQueue, threads: SharedThreads) -> None:
        self.settings = settings
        self.models = models
        self.queue = queue
        self.threads = threads

    async def run(self, command: Command, invocation: Invocation) -> str:
        user_id, prefix, guild_id = invocation.user_id, invocation.prefix, invocation.guild_id
        if command is Command.MODELS:
            seen = await self.models.look(user_id, guild_id)
            seeing = self.models.live.seeing
            return texts.models_text(seen.served, seen.route, seen.choice, seen.server_default, prefix, seeing=seeing)
        words = invocation.argument.split()
        if not words:
            chooser, in_thread = await self._chooser_here(invocation)
            route = (await self.models.look(chooser, guild_id)).route
            return texts.answered_by_text(route, prefix, in_thread=in_thread)
        if words[0].lower() == DEFAULT_WORD:
            return await self._server_default(invocation, words[1:])
        served = await self.models.live.fresh()
        name = _served_name(words[0], served)
        if name is None or len(words) > 1:
            return texts.not_served_text(_shown(words[0]), sorted(served))
        if not await self.models.choose(user_id, name):
            return texts.model_needs_optin_text(prefix)
        unserved = set(await self.queue.models.refresh()) - set(served)
        moved = await self.queue.reroute(user_id, name, unserved) if unserved else 0
        return texts.model_chosen_text(name, moved)

    async def set_server_default(self, invocation: Invocation) -> str:
        """`/model-default [name]`: the same as `!model default [name]`."""
        return await self._server_default(invocation, invocation.argument.split())

    async def served_names(self) -> list[str]:
        """The models a live runner serves now, by name (what `/model` offers as you type)."""
        return sorted(await self.models.live.cached())

    async def _server_default(self, invocation: Invocation, words: list[str]) -> str:
        prefix, guild_id = invocation.prefix, invocation.guild_id
        if guild_id is None:
            return texts.server_default_where_text(prefix)
        if not words:
            seen = await self.models.look(None, guild_id)
            return texts.server_default_text(seen.server_default, seen.served, seen.route, prefix)
        allowed, _ = operator_scope(invocation, self.settings.admin_user_ids)
        if not allowed:
            return texts.ADMINS_ONLY
        served = await self.models.live.fresh()
        name = _served_name(words[0], served)
        if name is None or len(words) > 1:
            return texts.not_served_text(_shown(words[0]), sorted(served))
        await self.models.set_server_default(guild_id, name)
        return texts.server_default_set_text(name)

    async def _chooser_here(self, invocation: Invocation) -> tuple[str | None, bool]:
        """Whose choice holds in this channel (the caller's, or in a shared thread its starter's), and whether it is
        a shared thread."""
        channel = invocation.channel
        if may_be_shared_thread(channel, invocation.bot_id):
            shared, starter = await self.threads.sharing(str(getattr(channel, "id", "")))
            if shared:
                return starter, True
        return invocation.user_id, False


def _served_name(typed: str, served: dict[str, int]) -> str | None:
    """The model name typed, if a live runner serves it."""
    try:
        name = parse_model_name(typed)
    except ValueError:
        return None
    return name if name in served else None


def _shown(typed: str) -> str:
    """Someone's typed name as a reply may quote it: short, and without the backticks that would end the quote."""
    return typed.replace("`", "")[:64]
