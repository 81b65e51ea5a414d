"""How one setting is declared: variable, parser, default, doc and users, in one `setting(...)` call."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import Flag
from typing import Any, Generic, TypeVar

from shared.errors import SettingsError

T = TypeVar("T")

_METADATA_KEY = "setting"


class Process(Flag):
    """Who reads a setting: one or more of the three processes, the launcher, or only docker-compose.yml."""

    BOT = 1
    RUNNER = 2
    UPDATER = 4
    ALL = BOT | RUNNER | UPDATER
    COMPOSE = 8
    LAUNCHER = 16
    """`llama-discord-bot run` (launcher/), which starts Redis and the three processes on one machine."""

    def as_text(self) -> str:
        """As the README's "used by" column writes it: `all`, `compose`, or e.g. `runner, updater`."""
        if self is Process.ALL:
            return "all"
        return ", ".join(member.name.lower() for member in self if member.name)


BOT, RUNNER, UPDATER, ALL = Process.BOT, Process.RUNNER, Process.UPDATER, Process.ALL
COMPOSE, LAUNCHER = Process.COMPOSE, Process.LAUNCHER


@dataclass(frozen=True)
class SettingSpec(Generic[T]):
    """Everything about one setting; `.env.example` and the README's table are checked against it."""

    env: str
    """The environment (and `.env`) variable."""
    parse: Callable[[str], T]
    """Turns the variable's text into the value; raises ValueError saying what it expected."""
    default: T
    """The value when the variable is unset or empty."""
    doc: str
    """What it is for: the one text the README's settings table and `.env.example` print (shared/config/docs.py)."""
    used_by: Process
    default_doc: str | None = None
    """How the README shows the default where the value alone would not say it (e.g. `host-pid-random`)."""
    secret: bool = False
    """A credential: logs never show it, and `.env.example` holds an empty placeholder for it, never a value."""
    testing_only: bool = False
    """Only tests set it (e.g. to point at a fake Discord); `.env.example` keeps it commented out."""
    example: str | None = None
    """What `.env.example` shows after `NAME=` where the default's own text would not do (a testing-only URL)."""

    def read(self, env: Mapping[str, str]) -> T:
        """The value `env` gives it: the default when unset or blank, else the parsed text."""
        raw = env.get(self.env, "").strip()
        if not raw:
            return self.default
        try:
            return self.parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{self.env} is invalid: {exc}") from None


def setting(
    env: str,
    parse: Callable[[str], T],
    default: T,
    doc: str,
    *,
    used_by: Process,
    default_doc: str | None = None,
    secret: bool = False,
    testing_only: bool = False,
    example: str | None = None,
) -> T:
    """A field of `Settings` declaring one setting: adding one is this field alone, then `python -m
    shared.config.docs --write` prints its row in the README's settings table and its lines in `.env.example`.

    e.g. `max_new_tokens: int = setting("MAX_NEW_TOKENS", bounded(int, 1, 32768), 256, "...", used_by=RUNNER)`
    """
    spec = SettingSpec(env, parse, default, doc, used_by, default_doc, secret, testing_only, example)
    return dataclasses.field(default=default, metadata={_METADATA_KEY: spec})


def spec_of(field: dataclasses.Field[Any]) -> SettingSpec[Any]:
    """The declaration of a field made with `setting(...)`."""
    spec = field.metadata[_METADATA_KEY]
    assert isinstance(spec, SettingSpec)
    return spec
