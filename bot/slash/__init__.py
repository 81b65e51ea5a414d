"""Slash commands: the `!` commands as Discord application commands, `/ask`, and syncing them with Discord."""
