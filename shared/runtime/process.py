"""Start-up and shutdown shared by the three processes: settings, logging, signals, one-line fatal errors."""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from collections.abc import Callable, Coroutine, Iterable
from typing import Any

from shared.config.settings import Settings
from shared.errors import FatalStartupError, SettingsError
from shared.runtime.logs import configure_logging

MainFn = Callable[[Settings, asyncio.Event], Coroutine[Any, Any, None]]


def run_process(name: str, main: MainFn, require: Iterable[str] = ()) -> int:
    """Runs `main` until it returns or SIGTERM/SIGINT sets the stop event; returns the exit code.

    0 after a stop, 2 for a setting to fix (missing, invalid, or a token refused), 1 for any other fatal error.
    """
    try:
        settings = Settings.from_env(require=require)
    except SettingsError as exc:
        print(f"{name}: error: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.secrets())
    log = logging.getLogger(name)
    try:
        asyncio.run(_run_until_signalled(main, settings))
    except FatalStartupError as exc:
        log.error("cannot start: %s", exc)
        return exc.exit_code
    except KeyboardInterrupt:
        pass
    return 0


async def _run_until_signalled(main: MainFn, settings: Settings) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await main(settings, stop)
