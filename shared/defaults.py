"""Default values for settings and timings, each with its unit in the name."""

DEFAULT_REDIS_URL = "redis://localhost:6379/0"
"""Where Redis listens when REDIS_URL is not set."""

DEFAULT_MAX_NEW_TOKENS = 256
"""Upper bound on tokens generated for one answer."""

DEFAULT_TEMPERATURE = 0.7
"""Sampling temperature; 0 means greedy decoding."""

DEFAULT_TOP_P = 0.9
"""Nucleus sampling mass."""

DEFAULT_REPETITION_PENALTY = 1.1
"""Penalty on tokens already generated (1.0 = none)."""

DEFAULT_COMMAND_PREFIX = "!"
"""Prefix of the commands users type (`!optin`, ...)."""

DEFAULT_WAKE_WORDS = ("llama",)
"""Words that address the bot when they open a message ("Hey Llama, ...")."""

DEFAULT_SYSTEM_PROMPT = (
    # Neutral on purpose: naming the bot "Llama" here made the built-in 135M model answer in French.
    "You are a helpful assistant chatting in a Discord server. Answer concisely and accurately."
)
"""System prompt put before every conversation."""

DEFAULT_HISTORY_MAX_TURNS = 20
"""Messages (user and assistant each count one) kept per user."""

DEFAULT_HISTORY_TTL_DAYS = 30.0
"""A user's history expires this long after their last exchange (0 = never)."""

DEFAULT_MAX_PENDING_PER_USER = 3
"""Messages a user may have waiting behind the one being answered."""

DEFAULT_RATE_LIMIT_PER_MINUTE = 10
"""Messages a user may have accepted per minute; past it they are told to slow down."""

DEFAULT_MAX_ATTEMPTS = 3
"""Tries per job before it is dead-lettered and the user gets an apology."""

DEFAULT_HEARTBEAT_TTL_S = 15.0
"""A worker whose heartbeat is older than this is taken for dead and its jobs are requeued."""

DEFAULT_BLOCK_TIMEOUT_S = 2.0
"""Longest a blocking Redis call waits, so that loops notice shutdown."""

DEFAULT_POSTED_TTL_S = 7 * 24 * 3600
"""How long the record of a posted answer is kept for de-duplication."""

DEFAULT_SEEN_TTL_S = 24 * 3600
"""How long a message id is remembered so that a gateway replay is not queued twice."""

DEFAULT_BATCH_SIZE = 16
"""Jobs a runner generates together; jobs join the batch as others finish (continuous batching)."""

DEFAULT_BATCH_TOKEN_BUDGET = 16384
"""Cache positions one runner's batch may hold: jobs x the longest (prompt + MAX_NEW_TOKENS) among them.

What bounds a runner's memory: about 0.75 GB of key/value cache for the built-in model in float32, 2 GB for an
8B Llama in bfloat16. A prompt longer than this allows is trimmed, oldest history first."""

DEFAULT_UPDATER_CONCURRENCY = 8
"""Responses one updater posts at the same time (the parts of one answer still go one after another)."""

DEFAULT_DISCORD_REQUESTS_PER_S = 40.0
"""Discord requests per second that all updaters together may make; Discord allows 50 per bot, and the
bot process keeps the rest for its reactions (REACTIONS_PER_S) and its own messages (BOT_REPLIES_PER_S)."""

DEFAULT_REACTIONS_PER_S = 5.0
"""Most 👀/⏳ reactions the bot adds per second; past it a message simply gets no reaction."""

DEFAULT_BOT_REPLIES_PER_S = 4.0
"""Most messages the bot process itself posts per second (command replies, requests to wait, busy notices);
past it they wait their turn. With the updaters' 40 and the reactions' 5: 49, under Discord's 50."""

DEFAULT_MAX_INPUT_CHARS = 4000
"""Longer messages are truncated (with a note) before they are queued."""

DEFAULT_MODEL_CACHE_DIR = "~/.cache/llama-discord-bot"
"""Where downloaded and converted model weights are kept."""

DISCORD_MESSAGE_LIMIT_CHARS = 2000
"""Discord refuses message content longer than this."""
