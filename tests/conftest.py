"""Registers the suite's fixture plugins."""

pytest_plugins = [
    "tests.redis_fixtures",
    "tests.fake_discord.plugin",
    "tests.tiny_model",
    "tests.tiny_vlm",
    "tests.builtin_model",
    "tests.openai_server",
]
