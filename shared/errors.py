"""Exceptions, each named for one purpose."""


class SettingsError(Exception):
    """A setting is missing or invalid; the message names it and never shows a secret's value."""


class RedisUnavailableError(Exception):
    """Redis could not be reached (after retries, where the caller asked for them)."""


class JobPayloadError(ValueError):
    """A payload read from Redis is not valid JSON of the expected shape."""


class FatalStartupError(Exception):
    """The process cannot start; the message says why in one line and names what to fix."""

    exit_code = 1


class RejectedTokenError(FatalStartupError):
    """A service refused a token the settings gave it: a setting to fix, so exit code 2 as for a missing one."""

    exit_code = 2


class StaleReadError(RuntimeError):
    """A script's keys, read just before it ran, kept changing under it."""
