"""Slash commands: the `!` commands as Discord application commands, `/ask`, and syncing them with Discord."""

from __future__ import annotations

import aiohttp
import discord

REQUEST_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError)
"""What answering an interaction may raise: Discord's refusals, and the network's failures (logged, never fatal)."""


def failure(exc: BaseException) -> str:
    """One line about a failed request, for the log (an HTTPException's URL holds the interaction's token: not it)."""
    if isinstance(exc, discord.HTTPException):
        return f"{exc.status} {exc.text}"
    return type(exc).__name__
