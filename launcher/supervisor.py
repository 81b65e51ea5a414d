"""Runs Redis, the updater, a runner and the bot as children with one combined log, and stops them in reverse order."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass

from launcher.errors import LauncherError
from launcher.local_redis import choose_redis, ping
from shared.config.settings import Settings

PROCESSES = ("bot", "runner", "updater")
START_ORDER = ("updater", "runner", "bot")
"""After Redis; stopped in reverse: the bot first (no new jobs), the runner (finishes or returns what it holds)
before the updater (which posts what the runner finished), Redis last."""
DEFAULT_STOP_GRACE_S = 30.0
STOP_GRACE_S = {"runner": 90.0}
"""How long a process may take to stop after SIGTERM before it is killed: docker-compose.yml's stop_grace_period."""
REDIS_START_TIMEOUT_S = 30.0
OUTPUT_DRAIN_TIMEOUT_S = 5.0
"""After a child exits, how long its last lines may take to reach the log (a grandchild could hold the pipe)."""
LINE_LIMIT_BYTES = 1 << 20
NAME_WIDTH = len("launcher")
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
PR_SET_PDEATHSIG = 1
"""prctl option (linux/prctl.h): the signal a process gets when its parent dies."""

log = logging.getLogger("launcher")


def write_line(name: str, text: str) -> None:
    """One line of the combined log: `runner   | 2026-... INFO runner: ...`."""
    sys.stdout.write(f"{name:<{NAME_WIDTH}} | {text}\n")
    sys.stdout.flush()


class CombinedLogHandler(logging.Handler):
    """The launcher's own records, as lines of the combined log under its name."""

    def emit(self, record: logging.LogRecord) -> None:
        write_line("launcher", self.format(record))


def configure_launcher_log(level: str) -> None:
    handler = CombinedLogHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))  # the processes' format
    log.handlers[:] = [handler]
    log.setLevel(level)
    log.propagate = False


def _parent_death_signal() -> Callable[[], None] | None:
    """Linux only: a child set up with it gets SIGTERM if the launcher dies without stopping it (SIGKILL, a crash)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here: the child, between fork and exec, only calls it

    def set_it() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

    return set_it


@dataclass
class Child:
    name: str
    process: asyncio.subprocess.Process
    output: asyncio.Task[None]


class Supervisor:
    """The children in the order they started; a first signal asks for a stop, a second kills what is left."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.stop_requested = asyncio.Event()
        self.hurry = asyncio.Event()
        self._on_fork = _parent_death_signal()

    def on_signal(self, signum: signal.Signals) -> None:
        if self.stop_requested.is_set():
            log.warning("%s again: killing what is still running", signum.name)
            self.hurry.set()
        else:
            log.info("%s: stopping everything", signum.name)
            self.stop_requested.set()

    async def start(self, name: str, command: list[str], env: dict[str, str]) -> Child:
        process = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            limit=LINE_LIMIT_BYTES,
            # Its own process group: Ctrl-C in the terminal reaches the launcher alone, which stops them in order.
            process_group=0,
            preexec_fn=self._on_fork,
        )
        assert process.stdout is not None
        child = Child(name, process, asyncio.create_task(copy_output(name, process.stdout)))
        self.children.append(child)
        log.info("started %s (pid %d)", name, process.pid)
        return child

    async def wait_until_redis_answers(self, redis: Child, port: int) -> None:
        """Until the server answers PING; a stop request ends the wait too."""
        deadline = asyncio.get_running_loop().time() + REDIS_START_TIMEOUT_S
        while not self.stop_requested.is_set():
            if await ping(port) == "+PONG":
                log.info("Redis answers at 127.0.0.1:%d", port)
                return
            if redis.process.returncode is not None:
                raise LauncherError(f"redis exited (code {redis.process.returncode}) before answering: see its log")
            if asyncio.get_running_loop().time() > deadline:
                raise LauncherError(f"redis did not answer at 127.0.0.1:{port} within {REDIS_START_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.05)

    async def wait_for_stop_or_exit(self) -> Child | None:
        """Until a signal asks for a stop (None), or a child exits by itself (that child)."""
        exits = {asyncio.ensure_future(child.process.wait()): child for child in self.children}
        stop = asyncio.ensure_future(self.stop_requested.wait())
        done, pending = await asyncio.wait({stop, *exits}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        if stop in done:
            return None
        return next(child for task, child in exits.items() if task in done)

    async def stop_all(self) -> None:
        """SIGTERM to each child in reverse order of start, each given its grace period, then SIGKILL."""
        for child in reversed(self.children):
            await self._stop(child)

    async def _stop(self, child: Child) -> None:
        process = child.process
        if process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.terminate()
            grace_s = STOP_GRACE_S.get(child.name, DEFAULT_STOP_GRACE_S)
            if not await self._exits_within(process, grace_s):
                log.warning("%s did not stop within %.0f s of SIGTERM: killing it", child.name, grace_s)
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()
        try:
            await asyncio.wait_for(child.output, OUTPUT_DRAIN_TIMEOUT_S)
        except TimeoutError:
            log.warning("%s's output is still open after it exited: left out", child.name)
        log.info("%s %s", child.name, describe_exit(process.returncode))

    async def _exits_within(self, process: asyncio.subprocess.Process, timeout_s: float) -> bool:
        exited = asyncio.ensure_future(process.wait())
        hurried = asyncio.ensure_future(self.hurry.wait())
        await asyncio.wait({exited, hurried}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        hurried.cancel()
        exited.cancel()
        return process.returncode is not None


def describe_exit(code: int | None) -> str:
    """`exited with code 1`, or `ended by SIGTERM` for one stopped before it had set up its handlers."""
    if code is not None and code < 0:
        with contextlib.suppress(ValueError):
            return f"ended by {signal.Signals(-code).name}"
    return f"exited with code {code}"


async def copy_output(name: str, stream: asyncio.StreamReader) -> None:
    """Each line the child writes (stdout and stderr), prefixed with its name, until it closes its output."""
    while True:
        try:
            line = await stream.readline()
        except ValueError:  # longer than LINE_LIMIT_BYTES; the reader has dropped it
            write_line(name, f"(a line over {LINE_LIMIT_BYTES} bytes, left out)")
            continue
        if not line:
            return
        write_line(name, line.decode(errors="replace").rstrip("\r\n"))


async def run_everything(settings: Settings, *, redis_url_given: bool) -> int:
    """Redis, then the updater and a runner, then the bot; 0 once a signal stopped them, 1 if one ended by itself."""
    configure_launcher_log(settings.log_level)
    supervisor = Supervisor()
    loop = asyncio.get_running_loop()
    for signum in STOP_SIGNALS:
        loop.add_signal_handler(signum, supervisor.on_signal, signum)
    code = 1
    try:
        code = await start_and_watch(supervisor, settings, redis_url_given=redis_url_given)
    except LauncherError as exc:
        log.error("%s", exc)
    finally:
        await supervisor.stop_all()
        for signum in STOP_SIGNALS:
            loop.remove_signal_handler(signum)
    log.info("all stopped")
    return code


def metrics_port_of(offset: int, settings: Settings) -> dict[str, str]:
    """On one machine the processes cannot share METRICS_PORT: each in START_ORDER takes the next port up."""
    return {"METRICS_PORT": str(settings.metrics_port + offset)} if settings.metrics_port else {}


async def start_and_watch(supervisor: Supervisor, settings: Settings, *, redis_url_given: bool) -> int:
    choice = await choose_redis(settings, redis_url_given=redis_url_given)
    log.info("%s", choice.description)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if choice.url is not None:
        env["REDIS_URL"] = choice.url
    if choice.server_command is not None:
        redis = await supervisor.start("redis", choice.server_command, env)
        await supervisor.wait_until_redis_answers(redis, settings.local_redis_port)
    for offset, name in enumerate(START_ORDER):
        if supervisor.stop_requested.is_set():
            return 0
        await supervisor.start(name, [sys.executable, "-m", name], {**env, **metrics_port_of(offset, settings)})
    ended = await supervisor.wait_for_stop_or_exit()
    if ended is None:
        return 0
    log.error("%s %s by itself: stopping the others", ended.name, describe_exit(ended.process.returncode))
    return 1
