"""Registering the slash commands with Discord at start, only when they changed: Discord rate-limits syncing, so the
digest of what was last synced to each scope is kept in Redis and compared first."""

from __future__ import annotations

import hashlib
import json
import logging

import discord
from discord import app_commands
from redis.asyncio import Redis

from bot.slash import REQUEST_ERRORS, failure
from shared.storage.keys import Keys

log = logging.getLogger(__name__)

GLOBAL_SCOPE = "global"


def payload_digest(tree: app_commands.CommandTree[discord.Client], guild: discord.Object | None) -> str:
    """The digest of exactly what `tree.sync(guild=...)` would send, with the application it is sent for."""
    commands = tree.get_commands(guild=guild)
    payload = [command.to_dict(tree) for command in commands]
    application = tree.client.application_id
    text = json.dumps({"application": application, "commands": payload}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


async def sync_commands(
    tree: app_commands.CommandTree[discord.Client], redis: Redis, keys: Keys, guild_ids: frozenset[str]
) -> list[str]:
    """Syncs globally, or to each of `guild_ids` (instant, for testing) with the global commands copied there; returns
    the scopes actually synced. A failed sync is logged and retried at the next start (no digest is stored)."""
    synced = []
    for scope in sorted(guild_ids) or [GLOBAL_SCOPE]:
        guild = None if scope == GLOBAL_SCOPE else discord.Object(int(scope))
        if guild is not None:
            tree.copy_global_to(guild=guild)
        digest = payload_digest(tree, guild)
        key = keys.commands_synced(scope)
        if await redis.get(key) == digest:
            log.info("slash commands unchanged in scope %s: not synced", scope)
            continue
        try:
            registered = await tree.sync(guild=guild)
        except REQUEST_ERRORS as exc:
            log.warning("could not sync the slash commands to scope %s: %s", scope, failure(exc))
            continue
        await redis.set(key, digest)
        synced.append(scope)
        log.info("synced %d slash commands to scope %s", len(registered), scope)
    return synced
