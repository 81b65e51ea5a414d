"""`llama-discord-bot run`: Redis, a runner, the updater and the bot on one machine, from one command."""
