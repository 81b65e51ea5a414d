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

from shared.config.declaration import ALL, BOT, COMPOSE, LAUNCHER, RUNNER, UPDATER, SettingSpec, setting, spec_of
from shared.config.parsers import (
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
from shared.config.secret import Secret, redact_url_password
from shared.errors import SettingsError
from shared.queues.model_names import parse_model_name

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
        "The bot's token from the Discord developer portal.",
        used_by=BOT | UPDATER,
        default_doc="— (required)",
        secret=True,
    )
    redis_url: Secret = setting(
        "REDIS_URL",
        secret_redis_url,
        Secret("redis://localhost:6379/0"),
        (
            "Redis to use (`redis://:<password>@host:port/db`, `rediss://` for TLS). Unset, `make run` uses (or "
            "starts) one at 127.0.0.1 on `LOCAL_REDIS_PORT`."
        ),
        used_by=ALL,
    )
    model: str = setting(
        "MODEL",
        str,
        BUILTIN_MODEL,
        (
            "`builtin` (SmolLM2-135M-Instruct, offline), a Hub id (`meta-llama/Llama-3.2-1B-Instruct`), a "
            "local folder, a `.gguf` file, `openai:<model id>` (served by the server at `OPENAI_BASE_URL`), "
            "or `echo` / `echo:SECONDS` (answers with the question, for testing a deployment)."
        ),
        used_by=RUNNER,
    )
    model_name: str = setting(
        "MODEL_NAME",
        parse_model_name,
        "",
        (
            "The name people choose this runner's model by (`!model <name>`): lowercase letters, digits, `.`, "
            "`-`, `_`, at most 64. Runners of one name share its queue. Unset: `smollm2-135m` for `builtin`, "
            "the repository's last part for a Hub id, the model id for `openai:<id>`, the folder's name, "
            "`echo`."
        ),
        used_by=RUNNER,
        default_doc="from `MODEL`",
    )
    default_model: str = setting(
        "DEFAULT_MODEL",
        parse_model_name,
        "",
        (
            "The model answering people who chose none, where the server's administrators set no default "
            "(`!model default <name>`); used while a runner serves it."
        ),
        used_by=BOT,
        default_doc="the only model served, or the first by name",
    )
    hf_token: Secret = setting(
        "HF_TOKEN",
        secret_text,
        Secret(""),
        "Hugging Face token, for gated models such as meta-llama.",
        used_by=RUNNER,
        secret=True,
    )
    openai_base_url: str = setting(
        "OPENAI_BASE_URL",
        http_url,
        "",
        (
            "With `MODEL=openai:<model id>`, the OpenAI-compatible server (vLLM, Ollama, llama.cpp's "
            "`llama-server`, TGI, LM Studio, a hosted API) the runner sends its jobs to, `BATCH_SIZE` at a "
            "time, streamed: its `/v1` URL, e.g. `http://vllm:8000/v1`."
        ),
        used_by=RUNNER,
        default_doc="— (required by `openai:` models)",
    )
    openai_api_key: Secret = setting(
        "OPENAI_API_KEY",
        secret_text,
        Secret(""),
        "That server's API key, where it needs one; never logged.",
        used_by=RUNNER,
        secret=True,
    )
    model_sees_images: bool | None = setting(
        "MODEL_SEES_IMAGES",
        on_off,
        None,
        (
            "Whether the runner's model is shown a message's images (`true`/`false`). Unset: for `openai:` "
            "models `false` (set `true` for a vision model on vLLM, Ollama or llama.cpp's server); for a "
            "model the runner loads, whether it is an image-text-to-text model. Runners say it in their "
            "heartbeat, and `!models` shows it."
        ),
        used_by=RUNNER,
        default_doc="— (detected; `false` for `openai:` models)",
    )
    max_new_tokens: int = setting(
        "MAX_NEW_TOKENS", bounded(int, 1, 32768), 256, "Longest answer, in tokens.", used_by=RUNNER
    )
    temperature: float = setting(
        "TEMPERATURE", bounded(float, 0.0, 5.0), 0.7, "Sampling temperature; `0` is greedy.", used_by=RUNNER
    )
    top_p: float = setting("TOP_P", bounded(float, 0.01, 1.0), 0.9, "Nucleus sampling.", used_by=RUNNER)
    repetition_penalty: float = setting(
        "REPETITION_PENALTY",
        bounded(float, 0.5, 3.0),
        1.1,
        "1.0 = none.",
        used_by=RUNNER,
    )
    command_prefix: str = setting("COMMAND_PREFIX", no_spaces, "!", "Prefix of the commands.", used_by=BOT)
    wake_words: tuple[str, ...] = setting(
        "WAKE_WORDS",
        word_list,
        ("llama",),
        "Comma-separated words that address the bot near the start of a message.",
        used_by=BOT,
    )
    device: str = setting(
        "DEVICE",
        matching(_DEVICE_RE, "auto, cpu, mps, cuda or cuda:N"),
        "auto",
        "`auto` (CUDA when available, else CPU), `cpu`, `cuda`, `cuda:N`, `mps`.",
        used_by=RUNNER,
    )
    dtype: str = setting(
        "DTYPE",
        choice(DTYPES),
        "auto",
        (
            "`auto`, `float32`, `float16-weights`, `bfloat16`, `float16`. `auto`: bf16 on CUDA (fp16 where "
            "bf16 is unsupported); on a CPU, bf16 where the CPU computes it natively (`avx512_bf16`, "
            "`amx_bf16`), else `float16-weights` (float32 arithmetic, linear weights held in float16: half "
            "the bytes to read per step; needs AVX2, FMA, F16C and an x86 torch), else fp32. `float32` is "
            "float32 throughout, the dtype in which a job's answer is the same in any batch "
            "([Guarantees](#guarantees))."
        ),
        used_by=RUNNER,
    )
    system_prompt: str = setting(
        "SYSTEM_PROMPT",
        str,
        _SYSTEM_PROMPT,
        (
            "Put before every conversation where no persona is set (see [Administrators](#administrators)); "
            "`!persona show` shows it where it applies."
        ),
        used_by=BOT | RUNNER,
        default_doc="a friendly-assistant prompt",
    )
    history_max_turns: int = setting(
        "HISTORY_MAX_TURNS",
        bounded(int, 0, 1000),
        20,
        "Messages (yours and the bot's) kept per conversation (yours in one channel).",
        used_by=RUNNER,
    )
    history_ttl_days: float = setting(
        "HISTORY_TTL_DAYS",
        bounded(float, 0.0, 3650.0),
        30.0,
        (
            "A conversation expires this long after its last exchange (`0` = never); so does a shared thread "
            "nobody writes in."
        ),
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
        ("Messages that may wait in one shared thread, all speakers together; past it the sender is told to wait."),
        used_by=BOT,
    )
    max_pending_per_user: int = setting(
        "MAX_PENDING_PER_USER",
        bounded(int, 0, 100),
        3,
        (
            "Messages a user may have waiting behind the one being answered (in a shared thread: of theirs, "
            "behind everyone's)."
        ),
        used_by=BOT,
    )
    rate_limit_per_minute: int = setting(
        "RATE_LIMIT_PER_MINUTE",
        bounded(int, 1, 10_000),
        10,
        "Messages a user may send the bot per minute.",
        used_by=BOT,
    )
    admin_user_ids: frozenset[str] = setting(
        "ADMIN_USER_IDS",
        id_set,
        frozenset(),
        "Comma-separated user ids allowed to use the operator commands everywhere.",
        used_by=BOT,
    )
    command_guild_ids: frozenset[str] = setting(
        "COMMAND_GUILD_IDS",
        id_set,
        frozenset(),
        (
            "Comma-separated server ids to register the slash commands in instead of globally (a server's "
            "commands change at once; for testing). Unset: globally."
        ),
        used_by=BOT,
    )
    allow_dms: bool = setting(
        "ALLOW_DMS",
        on_off,
        True,
        (
            "Whether the bot answers direct messages (`true`/`false`); commands such as `!optout` work in DMs "
            "either way, and with `false` an opted-in user who writes to it there is told so once an hour."
        ),
        used_by=BOT,
    )
    consent_prompt: bool = setting(
        "CONSENT_PROMPT",
        on_off,
        True,
        (
            "Whether someone who has not opted in and addresses the bot gets the consent prompt with **Opt "
            "in** / **No thanks** buttons (see [First contact](#first-contact)); `false`: they get no answer "
            "at all."
        ),
        used_by=BOT,
    )
    consent_hold_s: float = setting(
        "CONSENT_HOLD_S",
        bounded(float, 0.0, 86400.0),
        600.0,
        (
            "Seconds the message that prompted a consent prompt is held, in the bot's memory only, to be "
            "answered if they press **Opt in**; then dropped."
        ),
        used_by=BOT,
    )
    max_attempts: int = setting(
        "MAX_ATTEMPTS",
        bounded(int, 1, 100),
        3,
        "Tries per message before it is dead-lettered and the user gets an apology.",
        used_by=RUNNER,
    )
    heartbeat_ttl_s: float = setting(
        "HEARTBEAT_TTL_S",
        bounded(float, 1.0, 3600.0),
        15.0,
        "A worker silent this long is taken for dead and its work is requeued.",
        used_by=RUNNER | UPDATER,
    )
    batch_size: int = setting(
        "BATCH_SIZE",
        bounded(int, 1, 1024),
        16,
        (
            "Jobs a runner generates together; a job joins the running batch as soon as a place is free and "
            "leaves it when its answer ends (continuous batching). At most one job per user is in a batch."
        ),
        used_by=RUNNER,
    )
    # About 0.75 GB of key/value cache for the built-in model in float32, 2 GB for an 8B Llama in bfloat16.
    batch_token_budget: int = setting(
        "BATCH_TOKEN_BUDGET",
        bounded(int, 64, 100_000_000),
        16384,
        (
            "Bounds a runner's memory: jobs in the batch × the longest (prompt + `MAX_NEW_TOKENS`) among them "
            "stays within it (~0.75 GB of cache for the built-in model). A job waits until it fits; a prompt "
            "too long even alone is trimmed, oldest history first."
        ),
        used_by=RUNNER,
    )
    stream_interval_s: float = setting(
        "STREAM_INTERVAL_S",
        bounded(float, 0.0, 60.0),
        1.0,
        (
            "Answers appear as they are written: the reply is edited at most this often (seconds) while the "
            "model writes, and past 2,000 characters continues in a new message. `0`: whole answers only, as "
            "one post."
        ),
        used_by=RUNNER,
    )
    show_reasoning: bool = setting(
        "SHOW_REASONING",
        on_off,
        False,
        (
            "A reasoning model's thinking (`<think>` blocks, or the `reasoning_content` an OpenAI-compatible "
            "server streams) is never posted and never kept in history: while it thinks the reply shows `-# "
            "thinking…`. `true`: the thinking is shown above the answer as subtext (`-# ` lines), still never "
            "kept in history."
        ),
        used_by=RUNNER,
    )
    updater_concurrency: int = setting(
        "UPDATER_CONCURRENCY",
        bounded(int, 1, 256),
        8,
        "Answers posted at once (the parts of one answer stay in order).",
        used_by=UPDATER,
    )
    # Discord's global limit is 50 requests/s per bot: allowing more would only trade our limit for its 429s.
    discord_requests_per_s: float = setting(
        "DISCORD_REQUESTS_PER_S",
        bounded(float, 0.1, 50.0),
        40.0,
        ("Most requests per second to Discord (which allows 50 per bot, shared with the bot's own)."),
        used_by=UPDATER,
    )
    reactions_per_s: float = setting(
        "REACTIONS_PER_S",
        bounded(float, 0.0, 50.0),
        5.0,
        (
            "Most 👀/⏳ acknowledgements per second; past it the reaction is skipped (it is a nicety) so the "
            "bot stays far under Discord's global limit."
        ),
        used_by=BOT,
    )
    # With the updaters' 40/s and the reactions' 5/s: 49/s, under Discord's 50.
    bot_replies_per_s: float = setting(
        "BOT_REPLIES_PER_S",
        bounded(float, 0.1, 50.0),
        4.0,
        (
            "Most messages per second the bot posts itself (command replies, requests to wait, busy notices); "
            "past it they wait their turn, never skipped. With `DISCORD_REQUESTS_PER_S` and "
            "`REACTIONS_PER_S`: 49/s at most, under Discord's 50."
        ),
        used_by=BOT,
    )
    max_input_chars: int = setting(
        "MAX_INPUT_CHARS",
        bounded(int, 1, 100_000),
        4000,
        ("Longer messages are truncated, and the user is told; text files read in count towards it."),
        used_by=BOT,
    )
    max_images: int = setting(
        "MAX_IMAGES",
        bounded(int, 0, 20),
        4,
        (
            "Images of one message (and of the message it replies to) shown to a model that sees; the rest "
            "are left out, and the author is told."
        ),
        used_by=BOT | RUNNER,
    )
    max_image_bytes: int = setting(
        "MAX_IMAGE_BYTES",
        bounded(int, 1, 100_000_000),
        10_000_000,
        (
            "Largest image a runner fetches for its model (checked while reading); a larger one is left out, "
            "and the author is told."
        ),
        used_by=RUNNER,
    )
    max_context_tokens: int = setting(
        "MAX_CONTEXT_TOKENS",
        bounded(int, 0, 10_000_000),
        0,
        ("Context window; history is trimmed, oldest first, to fit it minus `MAX_NEW_TOKENS`."),
        used_by=RUNNER,
        default_doc="model's (capped at 8192)",
    )
    model_cache_dir: Path = setting(
        "MODEL_CACHE_DIR",
        path,
        path("~/.cache/llama-discord-bot"),
        (
            "Downloaded and converted weights (a volume shared by runners in compose); `make run`'s own Redis "
            "keeps its data in `redis/` there."
        ),
        used_by=RUNNER | LAUNCHER,
        example="~/.cache/llama-discord-bot",
    )
    local_redis_port: int = setting(
        "LOCAL_REDIS_PORT",
        bounded(int, 1, 65535),
        6379,
        (
            "With `REDIS_URL` unset, `make run` (`llama-discord-bot run`) uses the Redis already listening at "
            "127.0.0.1 on this port, or else starts its own there."
        ),
        used_by=LAUNCHER,
    )
    worker_id: str = setting(
        "WORKER_ID",
        no_spaces,
        "",
        "Id of this worker in Redis.",
        used_by=RUNNER | UPDATER,
        default_doc="host-pid-random",
    )
    metrics_port: int = setting(
        "METRICS_PORT",
        bounded(int, 1, 65535),
        0,
        (
            "Port on which each process serves Prometheus metrics (`/metrics`) and its health (`/healthz`); "
            "see [Metrics and health](#metrics-and-health). Compose sets `9100` in every container; `make "
            "run` gives the updater this port, the runner the next and the bot the one after."
        ),
        used_by=ALL,
        default_doc="— (off)",
        example="",
    )
    shard_count: int | str | None = setting(
        "SHARD_COUNT",
        shard_count,
        None,
        ("Gateway shards of the bot token, or `auto` (as many as Discord recommends); see [Sharding](#sharding)."),
        used_by=BOT,
        default_doc="— (one process, no sharding)",
    )
    shard_ids: tuple[int, ...] = setting(
        "SHARD_IDS",
        shard_ids,
        (),
        (
            "The shards this bot process holds, e.g. `0,1` (needs `SHARD_COUNT` a number). The bot's own "
            "request budgets (`REACTIONS_PER_S`, `BOT_REPLIES_PER_S`) are shared out in proportion."
        ),
        used_by=BOT,
        default_doc="— (all of SHARD_COUNT)",
    )
    log_level: str = setting(
        "LOG_LEVEL", choice(_LOG_LEVELS, upper=True), "INFO", "`DEBUG`, `INFO`, `WARNING`, `ERROR`.", used_by=ALL
    )
    discord_api_base: str = setting(
        "DISCORD_API_BASE",
        http_url,
        "",
        "Testing only: point discord.py at a fake Discord's REST API.",
        used_by=BOT | UPDATER,
        default_doc="Discord's",
        testing_only=True,
        example="http://127.0.0.1:8080/api/v10",
    )
    discord_gateway_url: str = setting(
        "DISCORD_GATEWAY_URL",
        ws_url,
        "",
        "Testing only: point discord.py at a fake Discord's gateway (the updater never connects to it).",
        used_by=BOT,
        default_doc="Discord's",
        testing_only=True,
        example="ws://127.0.0.1:8080/gateway",
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
