"""An image's type, read from its first bytes (what Discord or the file name say is only a hint)."""

from __future__ import annotations

from typing import Literal

ImageKind = Literal["png", "jpeg", "gif", "webp"]

KIND_NAMES = "PNG, JPEG, WebP or GIF"
"""The kinds a model is shown, as a note names them."""


def image_kind(data: bytes) -> ImageKind | None:
    """The kind of image `data` starts as, or None (an executable, a text, an unsupported format)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    return None
