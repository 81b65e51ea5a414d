"""Model names: what a runner announces it serves, what people choose, and the part of a queue's key that says
whose jobs it holds; so they are checked before they go anywhere near a key."""

from __future__ import annotations

import re

MODEL_NAME_MAX_CHARS = 64
_NAME_RE = re.compile(r"[a-z0-9][a-z0-9._-]{0,63}")
_NOT_NAME_CHARS_RE = re.compile(r"[^a-z0-9._-]+")


def is_model_name(text: str) -> bool:
    """Lowercase letters, digits, '.', '-' and '_', starting with a letter or digit, at most 64 characters."""
    return _NAME_RE.fullmatch(text) is not None


def parse_model_name(raw: str) -> str:
    """A model name as someone typed it (in a setting or a command), lowercased; ValueError if it is not one."""
    name = raw.strip().lower()
    if not is_model_name(name):
        raise ValueError(
            f"expected a model name (lowercase letters, digits, '.', '-' or '_', starting with a letter or digit, "
            f"at most {MODEL_NAME_MAX_CHARS} characters), got {raw.strip()[:80]!r}"
        )
    return name


def name_from(text: str) -> str:
    """A model name made from any text (a folder, a Hub repository, a server's model id): lowercased, every run of
    other characters turned into '-'; "" when nothing is left."""
    name = _NOT_NAME_CHARS_RE.sub("-", text.strip().lower()).strip("-._")
    return name[:MODEL_NAME_MAX_CHARS].rstrip("-._")
