"""Parsers that turn a setting's text into its value; each raises ValueError with what it expected."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from shared.config.secret import Secret

T = TypeVar("T")


def bounded(kind: Callable[[str], T], low: float, high: float) -> Callable[[str], T]:
    """An int or float from `low` to `high`, both included."""

    def parse(raw: str) -> T:
        try:
            value = kind(raw)
        except ValueError:
            noun = "an integer" if kind is int else "a number"
            raise ValueError(f"expected {noun}, got {raw!r}") from None
        if not low <= value <= high:  # type: ignore[operator]
            raise ValueError(f"must be between {low:g} and {high:g}, got {raw}")
        return value

    return parse


def choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    """One of `options`, whatever the case it was written in."""

    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def matching(pattern: re.Pattern[str], described: str) -> Callable[[str], str]:
    """Lower-cased text that `pattern` matches; `described` says what it accepts."""

    def parse(raw: str) -> str:
        if not pattern.match(raw.lower()):
            raise ValueError(f"expected {described}, got {raw!r}")
        return raw.lower()

    return parse


_TRUE_WORDS = ("1", "true", "yes", "on")
_FALSE_WORDS = ("0", "false", "no", "off")


def on_off(raw: str) -> bool:
    """A switch: true/false, yes/no, on/off or 1/0, whatever the case."""
    value = raw.strip().lower()
    if value not in _TRUE_WORDS + _FALSE_WORDS:
        raise ValueError(f"expected true or false, got {raw!r}")
    return value in _TRUE_WORDS


def no_spaces(raw: str) -> str:
    if any(c.isspace() for c in raw):
        raise ValueError("must not contain spaces")
    return raw


def word_list(raw: str) -> tuple[str, ...]:
    words = tuple(w.strip().lower() for w in raw.split(",") if w.strip())
    if not words:
        raise ValueError("expected a comma-separated list of words")
    return words


def id_set(raw: str) -> frozenset[str]:
    ids = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if not all(part.isdigit() for part in ids):
        raise ValueError("expected comma-separated Discord user ids (numbers)")
    return ids


def path(raw: str) -> Path:
    return Path(raw).expanduser()


def secret_text(raw: str) -> Secret:
    return Secret(raw)


def secret_redis_url(raw: str) -> Secret:
    # Never echo the URL back: it may carry the password.
    if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return Secret(raw)


def http_url(raw: str) -> str:
    if urlsplit(raw).scheme not in ("http", "https"):
        raise ValueError(f"expected an http(s):// URL, got {raw!r}")
    return raw.rstrip("/")


def ws_url(raw: str) -> str:
    if urlsplit(raw).scheme not in ("ws", "wss"):
        raise ValueError(f"expected a ws(s):// URL, got {raw!r}")
    return raw


SHARD_COUNT_AUTO = "auto"
"""SHARD_COUNT value that asks Discord how many shards the bot should run (GET /gateway/bot)."""


def shard_count(raw: str) -> int | str:
    """A number of shards from 1, or `auto`."""
    if raw.lower() == SHARD_COUNT_AUTO:
        return SHARD_COUNT_AUTO
    return bounded(int, 1, 100_000)(raw)


def shard_ids(raw: str) -> tuple[int, ...]:
    """Distinct shard numbers, comma-separated (`0,1`), in increasing order."""
    parts = [part.strip() for part in raw.split(",") if part.strip()]
    if not parts or not all(part.isdigit() for part in parts):
        raise ValueError(f"expected comma-separated shard numbers such as 0,1, got {raw!r}")
    ids = sorted({int(part) for part in parts})
    if len(ids) != len(parts):
        raise ValueError(f"a shard is named twice in {raw!r}")
    return tuple(ids)
