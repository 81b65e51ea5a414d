"""The one settings object every process reads from the environment and `.env`."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from dotenv import dotenv_values

from shared import defaults
from shared.errors import SettingsError
from shared.secret import Secret, redact_url_password

T = TypeVar("T")

_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
DTYPES = ("auto", "float32", "bfloat16", "float16")
BUILTIN_MODEL = "builtin"
"""MODEL value (also the default) for the SmolLM2-135M-Instruct model shipped in a package."""
ECHO_MODEL = "echo"
"""MODEL value for an engine that answers instantly with the question: for testing a deployment."""


@dataclass(frozen=True)
class Settings:
    """Every setting of the three processes; each field documents the variable it comes from."""

    discord_token: Secret = field(default_factory=lambda: Secret(""))
    redis_url: Secret = field(default_factory=lambda: Secret(defaults.DEFAULT_REDIS_URL))
    model: str = BUILTIN_MODEL
    hf_token: Secret = field(default_factory=lambda: Secret(""))
    max_new_tokens: int = defaults.DEFAULT_MAX_NEW_TOKENS
    temperature: float = defaults.DEFAULT_TEMPERATURE
    top_p: float = defaults.DEFAULT_TOP_P
    repetition_penalty: float = defaults.DEFAULT_REPETITION_PENALTY
    command_prefix: str = defaults.DEFAULT_COMMAND_PREFIX
    wake_words: tuple[str, ...] = defaults.DEFAULT_WAKE_WORDS
    device: str = "auto"
    dtype: str = "auto"
    system_prompt: str = defaults.DEFAULT_SYSTEM_PROMPT
    history_max_turns: int = defaults.DEFAULT_HISTORY_MAX_TURNS
    history_ttl_days: float = defaults.DEFAULT_HISTORY_TTL_DAYS
    max_pending_per_user: int = defaults.DEFAULT_MAX_PENDING_PER_USER
    rate_limit_per_minute: int = defaults.DEFAULT_RATE_LIMIT_PER_MINUTE
    admin_user_ids: frozenset[str] = frozenset()
    max_attempts: int = defaults.DEFAULT_MAX_ATTEMPTS
    heartbeat_ttl_s: float = defaults.DEFAULT_HEARTBEAT_TTL_S
    batch_size: int = defaults.DEFAULT_BATCH_SIZE
    batch_token_budget: int = defaults.DEFAULT_BATCH_TOKEN_BUDGET
    updater_concurrency: int = defaults.DEFAULT_UPDATER_CONCURRENCY
    discord_requests_per_s: float = defaults.DEFAULT_DISCORD_REQUESTS_PER_S
    reactions_per_s: float = defaults.DEFAULT_REACTIONS_PER_S
    bot_replies_per_s: float = defaults.DEFAULT_BOT_REPLIES_PER_S
    max_input_chars: int = defaults.DEFAULT_MAX_INPUT_CHARS
    max_context_tokens: int = 0
    model_cache_dir: Path = field(default_factory=lambda: Path(defaults.DEFAULT_MODEL_CACHE_DIR).expanduser())
    worker_id: str = ""
    log_level: str = "INFO"
    discord_api_base: str = ""
    discord_gateway_url: str = ""

    def __repr__(self) -> str:
        shown = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "redis_url":
                value = redact_url_password(value.reveal())
            shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def history_ttl_s(self) -> int:
        return int(self.history_ttl_days * 86400)

    @property
    def redis_url_for_logs(self) -> str:
        return redact_url_password(self.redis_url.reveal())

    def secrets(self) -> list[str]:
        """The secret values, so that log output can be scrubbed of them."""
        values = [self.discord_token.reveal(), self.hf_token.reveal()]
        password = urlsplit(self.redis_url.reveal()).password
        if password:
            values.append(password)
        return [v for v in values if v]

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str] | None = None,
        *,
        env_file: str | Path | None = ".env",
        require: Iterable[str] = (),
    ) -> Settings:
        """Read settings; variables in `environ` win over those in `env_file`.

        `require` names variables that this process cannot run without (e.g. DISCORD_TOKEN).
        """
        env: dict[str, str] = {}
        if env_file is not None and Path(env_file).is_file():
            env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
        env.update(os.environ if environ is None else environ)
        return _parse(env, tuple(require))


def _parse(env: Mapping[str, str], require: tuple[str, ...]) -> Settings:
    for name in require:
        if not env.get(name, "").strip():
            raise SettingsError(f"{name} is not set; put it in the environment or in .env")

    def get(name: str, parse: Callable[[str], T], default: T) -> T:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            return parse(raw)
        except ValueError as exc:
            raise SettingsError(f"{name} is invalid: {exc}") from None

    redis_url = get("REDIS_URL", _redis_url, defaults.DEFAULT_REDIS_URL)
    return Settings(
        discord_token=Secret(env.get("DISCORD_TOKEN", "").strip()),
        redis_url=Secret(redis_url),
        model=get("MODEL", str, BUILTIN_MODEL),
        hf_token=Secret(env.get("HF_TOKEN", "").strip()),
        max_new_tokens=get("MAX_NEW_TOKENS", _bounded(int, 1, 32768), defaults.DEFAULT_MAX_NEW_TOKENS),
        temperature=get("TEMPERATURE", _bounded(float, 0.0, 5.0), defaults.DEFAULT_TEMPERATURE),
        top_p=get("TOP_P", _bounded(float, 0.01, 1.0), defaults.DEFAULT_TOP_P),
        repetition_penalty=get("REPETITION_PENALTY", _bounded(float, 0.5, 3.0), defaults.DEFAULT_REPETITION_PENALTY),
        command_prefix=get("COMMAND_PREFIX", _no_spaces, defaults.DEFAULT_COMMAND_PREFIX),
        wake_words=get("WAKE_WORDS", _word_list, defaults.DEFAULT_WAKE_WORDS),
        device=get("DEVICE", _choice_re(_DEVICE_RE, "auto, cpu, mps, cuda or cuda:N"), "auto"),
        dtype=get("DTYPE", _choice(DTYPES), "auto"),
        system_prompt=env.get("SYSTEM_PROMPT", "").strip() or defaults.DEFAULT_SYSTEM_PROMPT,
        history_max_turns=get("HISTORY_MAX_TURNS", _bounded(int, 0, 1000), defaults.DEFAULT_HISTORY_MAX_TURNS),
        history_ttl_days=get("HISTORY_TTL_DAYS", _bounded(float, 0.0, 3650.0), defaults.DEFAULT_HISTORY_TTL_DAYS),
        max_pending_per_user=get("MAX_PENDING_PER_USER", _bounded(int, 0, 100), defaults.DEFAULT_MAX_PENDING_PER_USER),
        rate_limit_per_minute=get(
            "RATE_LIMIT_PER_MINUTE", _bounded(int, 1, 10_000), defaults.DEFAULT_RATE_LIMIT_PER_MINUTE
        ),
        admin_user_ids=get("ADMIN_USER_IDS", _id_set, frozenset()),
        max_attempts=get("MAX_ATTEMPTS", _bounded(int, 1, 100), defaults.DEFAULT_MAX_ATTEMPTS),
        heartbeat_ttl_s=get("HEARTBEAT_TTL_S", _bounded(float, 1.0, 3600.0), defaults.DEFAULT_HEARTBEAT_TTL_S),
        batch_size=get("BATCH_SIZE", _bounded(int, 1, 1024), defaults.DEFAULT_BATCH_SIZE),
        batch_token_budget=get(
            "BATCH_TOKEN_BUDGET", _bounded(int, 64, 100_000_000), defaults.DEFAULT_BATCH_TOKEN_BUDGET
        ),
        updater_concurrency=get("UPDATER_CONCURRENCY", _bounded(int, 1, 256), defaults.DEFAULT_UPDATER_CONCURRENCY),
        # Discord's global limit is 50 requests/s per bot: allowing more would only trade our limit for its 429s.
        discord_requests_per_s=get(
            "DISCORD_REQUESTS_PER_S", _bounded(float, 0.1, 50.0), defaults.DEFAULT_DISCORD_REQUESTS_PER_S
        ),
        reactions_per_s=get("REACTIONS_PER_S", _bounded(float, 0.0, 50.0), defaults.DEFAULT_REACTIONS_PER_S),
        bot_replies_per_s=get("BOT_REPLIES_PER_S", _bounded(float, 0.1, 50.0), defaults.DEFAULT_BOT_REPLIES_PER_S),
        max_input_chars=get("MAX_INPUT_CHARS", _bounded(int, 1, 100_000), defaults.DEFAULT_MAX_INPUT_CHARS),
        max_context_tokens=get("MAX_CONTEXT_TOKENS", _bounded(int, 0, 10_000_000), 0),
        model_cache_dir=get(
            "MODEL_CACHE_DIR", lambda s: Path(s).expanduser(), Path(defaults.DEFAULT_MODEL_CACHE_DIR).expanduser()
        ),
        worker_id=get("WORKER_ID", _no_spaces, ""),
        log_level=get("LOG_LEVEL", _choice(("DEBUG", "INFO", "WARNING", "ERROR"), upper=True), "INFO"),
        discord_api_base=get("DISCORD_API_BASE", _http_url, ""),
        discord_gateway_url=get("DISCORD_GATEWAY_URL", _ws_url, ""),
    )


def _bounded(kind: Callable[[str], T], low: float, high: float) -> Callable[[str], T]:
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


def _choice(options: tuple[str, ...], upper: bool = False) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        value = raw.upper() if upper else raw.lower()
        if value not in options:
            raise ValueError(f"expected one of {', '.join(options)}, got {raw!r}")
        return value

    return parse


def _choice_re(pattern: re.Pattern[str], described: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if not pattern.match(raw.lower()):
            raise ValueError(f"expected {described}, got {raw!r}")
        return raw.lower()

    return parse


def _no_spaces(raw: str) -> str:
    if any(c.isspace() for c in raw):
        raise ValueError("must not contain spaces")
    return raw


def _word_list(raw: str) -> tuple[str, ...]:
    words = tuple(w.strip().lower() for w in raw.split(",") if w.strip())
    if not words:
        raise ValueError("expected a comma-separated list of words")
    return words


def _id_set(raw: str) -> frozenset[str]:
    ids = frozenset(part.strip() for part in raw.split(",") if part.strip())
    if not all(part.isdigit() for part in ids):
        raise ValueError("expected comma-separated Discord user ids (numbers)")
    return ids


def _redis_url(raw: str) -> str:
    # Never echo the URL back: it may carry the password.
    if urlsplit(raw).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("expected a redis://, rediss:// or unix:// URL")
    return raw


def _http_url(raw: str) -> str:
    if urlsplit(raw).scheme not in ("http", "https"):
        raise ValueError(f"expected an http(s):// URL, got {raw!r}")
    return raw.rstrip("/")


def _ws_url(raw: str) -> str:
    if urlsplit(raw).scheme not in ("ws", "wss"):
        raise ValueError(f"expected a ws(s):// URL, got {raw!r}")
    return raw
