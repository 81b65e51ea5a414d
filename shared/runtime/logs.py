"""Logging set-up shared by the processes: one line per event, secrets scrubbed from every record."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable

_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_TOKEN_IN_URL = re.compile(r"(/(?:webhooks|interactions)/\d+/)[^/\s?'\"]+")
"""An interaction's token is in the URLs of its webhook and callback (discord.py may log them): never printed."""


class RedactSecrets(logging.Filter):
    """Replaces secret values wherever they would appear in a formatted record, tracebacks included."""

    def __init__(self, secrets: Iterable[str]) -> None:
        super().__init__()
        # Short values would mangle ordinary text and are not secrets worth the name.
        self._secrets = sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)

    def _scrub(self, text: str) -> str:
        text = _TOKEN_IN_URL.sub(r"\1**********", text)
        for secret in self._secrets:
            text = text.replace(secret, "**********")
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = self._scrub(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = self._scrub(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def configure_logging(level: str, secrets: Iterable[str] = ()) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    handler.addFilter(RedactSecrets(secrets))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # discord.py logs every gateway frame at DEBUG: too much even when debugging our own code.
    logging.getLogger("discord").setLevel(max(logging.getLevelName(level), logging.INFO))
