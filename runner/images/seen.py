"""What an engine is given of an image, and the reason an image is left out."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL.Image import Image


@dataclass(frozen=True, eq=False)
class SeenImage:
    """An image as fetched and prepared for a model: decoded (RGB, the first frame of an animation), scaled down to
    the engine's largest side, and encoded as PNG or JPEG for servers that take it as a `data:` URL."""

    filename: str
    mime: str
    """`image/png` or `image/jpeg`: what `data` holds."""
    data: bytes
    image: Image

    @property
    def data_url(self) -> str:
        return f"data:{self.mime};base64,{base64.b64encode(self.data).decode('ascii')}"


class ImageRefused(Exception):
    """An image that cannot be shown to the model; the message says why, as the end of a sentence to its author
    ("its link has expired (HTTP 404)")."""
