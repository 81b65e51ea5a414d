"""The `llama-discord-bot` console script: `run` starts everything; `bot`, `runner`, `updater` start one process."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from launcher.supervisor import PROCESSES, run_everything
from shared.config.settings import Settings, read_environment
from shared.errors import SettingsError

PROGRAM = "llama-discord-bot"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=PROGRAM,
        description="A self-hosted, distributed Discord bot that chats with a Llama-family model.",
        epilog="Settings come from the environment and .env in the working directory (see .env.example).",
    )
    parser.add_argument(
        "command",
        choices=("run", *PROCESSES),
        help="run: Redis (embedded unless REDIS_URL is set), a runner, the updater and the bot, one combined log, "
        "Ctrl-C stops them all; bot, runner, updater: that process alone, as `python -m <process>`",
    )
    parser.add_argument("args", nargs=argparse.REMAINDER, help="passed on to a single process")
    options = parser.parse_args(argv)
    if options.command in PROCESSES:
        # Replaced by `python -m <process>` itself rather than importing it: the process keeps its own pid, signals
        # and exit code, is the very command `run` starts, and no process package gets imported from here.
        os.execv(sys.executable, [sys.executable, "-m", options.command, *options.args])
    if options.args:
        parser.error(f"run takes no arguments: {' '.join(options.args)}")
    try:
        settings = Settings.from_env(require=["DISCORD_TOKEN"])
    except SettingsError as exc:
        print(f"{PROGRAM}: error: {exc}", file=sys.stderr)  # the line the processes themselves would give
        return 2
    return asyncio.run(run_everything(settings, redis_url_given=bool(read_environment().get("REDIS_URL", "").strip())))
