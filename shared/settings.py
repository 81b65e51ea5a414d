"""The one settings object every process reads from the environment and `.env`, each setting declared once."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from dotenv import dotenv_values

from shared.errors import SettingsError
from shared.model_names import parse_model_name
from shared.secret import Secret, redact_url_password
from shared.settings_declaration import ALL, BOT, COMPOSE, LAUNCHER, RUNNER, UPDATER, SettingSpec, setting, spec_of
from shared.settings_parsers import (
    bounded,
    choice,
    http_url,
    id_set,
    matching,
    no_spaces,
    on_off,
    path,
    secret_redis_url,
    secret_text,
    shard_count,
    shard_ids,
    word_list,
    ws_url,
)

FLOAT16_WEIGHTS = "float16-weights"
"""DTYPE value for a CPU: float32 arithmetic, the linear layers' weights held in float16 (half the bytes to read)."""
DTYPES = ("auto", "float32", FLOAT16_WEIGHTS, "bfloat16", "float16")
BUILTIN_MODEL = "builtin"
"""MODEL value (also the default) for the SmolLM2-135M-Instruct model shipped in a package."""
ECHO_MODEL = "echo"
"""MODEL value for an engine that answers instantly with the question: for testing a deployment."""
OPENAI_MODEL_PREFIX = "openai:"
"""MODEL prefix for a model served by the OpenAI-compatible server at OPENAI_BASE_URL (vLLM, Ollama, ...)."""
_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")
_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# Neutral on purpose: naming the bot "Llama" here made the built-in 135M model answer in French.
_SYSTEM_PROMPT = "You are a helpful assistant chatting in a Discord server. Answer concisely and accurately."


# `setting(...)` returns a dataclasses.field, whose default RUF009 cannot see is never shared mutable state.
# ruff: noqa: RUF009


@dataclass(frozen=True)
class Settings:
    """Every setting of the three processes; each field declares its variable, parser, default and users."""

    discord_token: Secret = setting(
        "DISCORD_TOKEN",
        secret_text,
        Secret(""),
        "The bot's token.",
        used_by=BOT | UPDATER,
        default_doc="— (required)",
        secret=True,
    )
    redis_url: Secret = setting(
        "REDIS_URL", secret_redis_url, Secret("redis://localhost:6379/0"), "Redis to use.", used_by=ALL
    )
    model: str = setting(
        "MODEL",
        str,
        BUILTIN_MODEL,
        "builtin, a Hub id, a folder, a .gguf file, openai:<model id> or echo.",
        used_by=RUNNER,
    )
    model_name: str = setting(
        "MODEL_NAME",
        parse_model_name,
        "",
        "The name this runner serves its model under; runners of one name share its queue.",
        used_by=RUNNER,
        default_doc="from `MODEL`",
    )
    default_model: str = setting(
        "DEFAULT_MODEL",
        parse_model_name,
        "",
        "The model answering people who chose none, where the server set no default.",
        used_by=BOT,
        default_doc="the only model served, or the first by name",
    )
    hf_token: Secret = setting(
        "HF_TOKEN", secret_text, Secret(""), "Hugging Face token, for gated models.", used_by=RUNNER, secret=True
    )
    openai_base_url: str = setting(
        "OPENAI_BASE_URL",
        http_url,
        "",
        "The OpenAI-compatible server an openai:<model id> runner sends its jobs to.",
        used_by=RUNNER,
        default_doc="— (required by `openai:` models)",
    )
    openai_api_key: Secret = setting(
        "OPENAI_API_KEY",
        secret_text,
        Secret(""),
        "Key of the OpenAI-compatible server, where it needs one.",
        used_by=RUNNER,
        secret=True,
    )
    model_sees_images: bool | None = setting(
        "MODEL_SEES_IMAGES",
        on_off,
        None,
        "Whether the runner's model is shown images (unset: detected; false for openai: models).",
        used_by=RUNNER,
        default_doc="— (detected; `false` for `openai:` models)",
    )
    max_new_tokens: int = setting(
        "MAX_NEW_TOKENS", bounded(int, 1, 32768), 256, "Longest answer, in tokens.", used_by=RUNNER
    )
    temperature: float = setting(
        "TEMPERATURE", bounded(float, 0.0, 5.0), 0.7, "Sampling temperature; 0 is greedy.", used_by=RUNNER
    )
    top_p: float = setting("TOP_P", bounded(float, 0.01, 1.0), 0.9, "Nucleus sampling mass.", used_by=RUNNER)
    repetition_penalty: float = setting(
        "REPETITION_PENALTY",
        bounded(float, 0.5, 3.0),
        1.1,
        "Penalty on tokens already generated (1.0 = none).",
        used_by=RUNNER,
    )
    command_prefix: str = setting("COMMAND_PREFIX", no_spaces, "!", "Prefix of the commands.", used_by=BOT)
    wake_words: tuple[str, ...] = setting(
        "WAKE_WORDS", word_list, ("llama",), "Words that address the bot at the start of a message.", used_by=BOT
    )
    device: str = setting(
        "DEVICE",
        matching(_DEVICE_RE, "auto, cpu, mps, cuda or cuda:N"),
        "auto",
        "Where the model runs.",
        used_by=RUNNER,
    )
    dtype: str = setting("DTYPE", choice(DTYPES), "auto", "The model's floating-point type.", used_by=RUNNER)
    system_prompt: str = setting(
        "SYSTEM_PROMPT",
        str,
        _SYSTEM_PROMPT,
        "Put before every conversation where no persona is set.",
        used_by=BOT | RUNNER,
        default_doc="a friendly-assistant prompt",
    )
    history_max_turns: int = setting(
        "HISTORY_MAX_TURNS",
        bounded(int, 0, 1000),
        20,
        "Messages (user's and bot's) kept per conversation.",
        used_by=RUNNER,
    )
    history_ttl_days: float = setting(
        "HISTORY_TTL_DAYS",
        bounded(float, 0.0, 3650.0),
        30.0,
        "Days until an idle conversation's history expires.",
        used_by=BOT | RUNNER,
    )
    thread_max_turns: int = setting(
        "THREAD_MAX_TURNS",
        bounded(int, 0, 1000),
        40,
        "Messages (everyone's and the bot's) kept per shared thread.",
        used_by=RUNNER,
    )
    max_pending_per_thread: int = setting(
        "MAX_PENDING_PER_THREAD",
        bounded(int, 1, 1000),
        10,
        "Messages waiting in one shared thread, all speakers together.",
        used_by=BOT,
    )
    max_pending_per_user: int = setting(
        "MAX_PENDING_PER_USER", bounded(int, 0, 100), 3, "Messages a user may have waiting.", used_by=BOT
    )
    rate_limit_per_minute: int = setting(
        "RATE_LIMIT_PER_MINUTE", bounded(int, 1, 10_000), 10, "Messages a user may send per minute.", used_by=BOT
    )
    admin_user_ids: frozenset[str] = setting(
        "ADMIN_USER_IDS", id_set, frozenset(), "User ids allowed the operator commands everywhere.", used_by=BOT
    )
    command_guild_ids: frozenset[str] = setting(
        "COMMAND_GUILD_IDS",
        id_set,
        frozenset(),
        "Server ids to register the slash commands in (instant, for testing) instead of globally.",
        used_by=BOT,
    )
    allow_dms: bool = setting("ALLOW_DMS", on_off, True, "Whether the bot answers direct messages.", used_by=BOT)
    consent_prompt: bool = setting(
        "CONSENT_PROMPT",
        on_off,
        True,
        "Whether someone who has not opted in and addresses the bot gets the Opt in / No thanks prompt.",
        used_by=BOT,
    )
    consent_hold_s: float = setting(
        "CONSENT_HOLD_S",
        bounded(float, 0.0, 86400.0),
        600.0,
        "Seconds the message that prompted a consent prompt is held (in memory) for answering after Opt in.",
        used_by=BOT,
    )
    max_attempts: int = setting(
        "MAX_ATTEMPTS", bounded(int, 1, 100), 3, "Tries per message before it is dead-lettered.", used_by=RUNNER
    )
    heartbeat_ttl_s: float = setting(
        "HEARTBEAT_TTL_S",
        bounded(float, 1.0, 3600.0),
        15.0,
        "A worker silent this long is taken for dead.",
        used_by=RUNNER | UPDATER,
    )
    batch_size: int = setting(
        "BATCH_SIZE", bounded(int, 1, 1024), 16, "Jobs a runner generates together.", used_by=RUNNER
    )
    # About 0.75 GB of key/value cache for the built-in model in float32, 2 GB for an 8B Llama in bfloat16.
    batch_token_budget: int = setting(
        "BATCH_TOKEN_BUDGET",
        bounded(int, 64, 100_000_000),
        16384,
        "Cache positions a runner's batch may hold: bounds its memory.",
        used_by=RUNNER,
    )
    stream_interval_s: float = setting(
        "STREAM_INTERVAL_S",
        bounded(float, 0.0, 60.0),
        1.0,
        "Seconds between two showings of an answer as it is written (0: whole answers only).",
        used_by=RUNNER,
    )
    show_reasoning: bool = setting(
        "SHOW_REASONING",
        on_off,
        False,
        "Whether answers show a reasoning model's thinking, as subtext above the answer (never kept in history).",
        used_by=RUNNER,
    )
    updater_concurrency: int = setting(
        "UPDATER_CONCURRENCY", bounded(int, 1, 256), 8, "Answers one updater posts at once.", used_by=UPDATER
    )
    # Discord's global limit is 50 requests/s per bot: allowing more would only trade our limit for its 429s.
    discord_requests_per_s: float = setting(
        "DISCORD_REQUESTS_PER_S",
        bounded(float, 0.1, 50.0),
        40.0,
        "Discord requests per second all updaters together may make.",
        used_by=UPDATER,
    )
    reactions_per_s: float = setting(
        "REACTIONS_PER_S",
        bounded(float, 0.0, 50.0),
        5.0,
        "Most acknowledgement reactions per second.",
        used_by=BOT,
    )
    # With the updaters' 40/s and the reactions' 5/s: 49/s, under Discord's 50.
    bot_replies_per_s: float = setting(
        "BOT_REPLIES_PER_S",
        bounded(float, 0.1, 50.0),
        4.0,
        "Most messages per second the bot posts itself.",
        used_by=BOT,
    )
    max_input_chars: int = setting(
        "MAX_INPUT_CHARS", bounded(int, 1, 100_000), 4000, "Longer messages are truncated.", used_by=BOT
    )
    max_images: int = setting(
        "MAX_IMAGES", bounded(int, 0, 20), 4, "Images of one message a model is shown.", used_by=BOT | RUNNER
    )
    max_image_bytes: int = setting(
        "MAX_IMAGE_BYTES",
        bounded(int, 1, 100_000_000),
        10_000_000,
        "Largest image fetched for a model (bytes).",
        used_by=RUNNER,
    )
    max_context_tokens: int = setting(
        "MAX_CONTEXT_TOKENS",
        bounded(int, 0, 10_000_000),
        0,
        "Context window in tokens (0 = the model's).",
        used_by=RUNNER,
        default_doc="model's (capped at 8192)",
    )
    model_cache_dir: Path = setting(
        "MODEL_CACHE_DIR",
        path,
        path("~/.cache/llama-discord-bot"),
        "Where model weights are kept; the launcher's own Redis keeps its data in redis/ there.",
        used_by=RUNNER | LAUNCHER,
    )
    local_redis_port: int = setting(
        "LOCAL_REDIS_PORT",
        bounded(int, 1, 65535),
        6379,
        "With REDIS_URL unset, the launcher's Redis listens on 127.0.0.1 at this port.",
        used_by=LAUNCHER,
    )
    worker_id: str = setting(
        "WORKER_ID",
        no_spaces,
        "",
        "This worker's id in Redis.",
        used_by=RUNNER | UPDATER,
        default_doc="host-pid-random",
    )
    metrics_port: int = setting(
        "METRICS_PORT",
        bounded(int, 1, 65535),
        0,
        "Port each process serves Prometheus /metrics and /healthz on (unset: off).",
        used_by=ALL,
        default_doc="— (off)",
    )
    shard_count: int | str | None = setting(
        "SHARD_COUNT",
        shard_count,
        None,
        "Gateway shards of the bot token, or auto (Discord's recommendation).",
        used_by=BOT,
        default_doc="— (one process, no sharding)",
    )
    shard_ids: tuple[int, ...] = setting(
        "SHARD_IDS",
        shard_ids,
        (),
        "The shards this bot process holds, e.g. 0,1 (needs a SHARD_COUNT number).",
        used_by=BOT,
        default_doc="— (all of SHARD_COUNT)",
    )
    log_level: str = setting("LOG_LEVEL", choice(_LOG_LEVELS, upper=True), "INFO", "Log level.", used_by=ALL)
    discord_api_base: str = setting(
        "DISCORD_API_BASE",
        http_url,
        "",
        "Testing only: a fake Discord's REST base URL.",
        used_by=BOT | UPDATER,
        default_doc="Discord's",
        testing_only=True,
    )
    discord_gateway_url: str = setting(
        "DISCORD_GATEWAY_URL",
        ws_url,
        "",
        "Testing only: a fake Discord's gateway URL.",
        used_by=BOT,
        default_doc="Discord's",
        testing_only=True,
    )

    def __post_init__(self) -> None:
        if self.shard_ids and not isinstance(self.shard_count, int):
            raise SettingsError("SHARD_IDS needs SHARD_COUNT set to a number of shards (not unset, not auto)")
        if isinstance(self.shard_count, int) and self.shard_ids and self.shard_ids[-1] >= self.shard_count:
            raise SettingsError(
                f"SHARD_IDS names shard {self.shard_ids[-1]}, but shards run 0 to {self.shard_count - 1}"
            )

    @property
    def shard_share(self) -> float:
        """The share of the bot's gateway traffic this process holds: its part of the bot's own request budgets."""
        if isinstance(self.shard_count, int) and self.shard_ids:
            return len(self.shard_ids) / self.shard_count
        return 1.0

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
        values = [getattr(self, f.name).reveal() for f in fields(self) if spec_of(f).secret]
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
        env = read_environment(environ, env_file=env_file)
        for name in require:
            if not env.get(name, "").strip():
                raise SettingsError(f"{name} is not set; put it in the environment or in .env")
        return cls(**{f.name: spec_of(f).read(env) for f in fields(cls)})


def read_environment(
    environ: Mapping[str, str] | None = None, *, env_file: str | Path | None = ".env"
) -> dict[str, str]:
    """The variables settings are read from: `env_file`'s, overridden by `environ` (default: the environment).

    The launcher asks it whether REDIS_URL was given at all, which the parsed default cannot tell.
    """
    env: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        env.update({k: v for k, v in dotenv_values(env_file).items() if v is not None})
    env.update(os.environ if environ is None else environ)
    return env


REDIS_PASSWORD = SettingSpec(
    "REDIS_PASSWORD",
    secret_text,
    Secret(""),
    "Password Redis is started with; compose builds REDIS_URL from it.",
    COMPOSE,
    default_doc="— (required by compose)",
    secret=True,
)
"""Only docker-compose.yml reads it, no process: declared so that its .env.example line and README row are checked."""


def declared_settings() -> tuple[SettingSpec[Any], ...]:
    """Every setting: the fields of Settings, then those only docker-compose.yml reads."""
    return (*(spec_of(f) for f in fields(Settings)), REDIS_PASSWORD)
