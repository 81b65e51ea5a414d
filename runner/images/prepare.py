"""Turning an image's bytes into what a model is shown: the type checked from the bytes, the first frame of an
animation, transparency on white, scaled down to the engine's largest side. CPU work (Pillow): run it off the event
loop, and never on the generation thread."""

from __future__ import annotations

import io
import warnings

from PIL import Image, UnidentifiedImageError

from runner.images.kinds import KIND_NAMES, ImageKind, image_kind
from runner.images.seen import ImageRefused, SeenImage

MAX_PIXELS = 50_000_000
"""Larger images are refused before they are decoded (a small file can hold a huge image that fills memory)."""
JPEG_QUALITY = 90
_PIL_FORMATS: dict[ImageKind, str] = {"png": "PNG", "jpeg": "JPEG", "gif": "GIF", "webp": "WEBP"}
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, UnidentifiedImageError)


def prepare_image(data: bytes, filename: str, max_side: int) -> SeenImage:
    """The image as a model is shown it; raises ImageRefused saying why not."""
    kind = image_kind(data)
    if kind is None:
        raise ImageRefused(f"it isn't a {KIND_NAMES} image")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=[_PIL_FORMATS[kind]]) as opened:
                width, height = opened.size
                if width * height > MAX_PIXELS:
                    raise ImageRefused(f"it is too large ({width}×{height} pixels)")
                if kind == "jpeg":
                    opened.draft("RGB", (max_side, max_side))  # decodes at 1/2, 1/4 or 1/8 scale where that suffices
                opened.seek(0)
                opened.load()
                rgb = _flattened(opened)
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise ImageRefused("it is too large in pixels") from None
    except _DECODE_ERRORS:
        raise ImageRefused("it is damaged or cut short") from None
    if max(rgb.size) > max_side:
        rgb.thumbnail((max_side, max_side), Image.Resampling.LANCZOS)
    if (width, height) == rgb.size and kind in ("png", "jpeg"):
        return SeenImage(filename, f"image/{kind}", data, rgb)
    return _encoded(filename, rgb, "jpeg" if kind == "jpeg" else "png")


def _flattened(image: Image.Image) -> Image.Image:
    """RGB, any transparency laid on white (dropping it would turn transparent pixels black)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        flat = Image.new("RGB", rgba.size, (255, 255, 255))
        flat.paste(rgba, mask=rgba.getchannel("A"))
        return flat
    return image.convert("RGB")


def _encoded(filename: str, image: Image.Image, kind: str) -> SeenImage:
    """Re-encoded as PNG or JPEG, the formats every OpenAI-compatible server reads (llama.cpp's reads no WebP)."""
    out = io.BytesIO()
    if kind == "jpeg":
        image.save(out, format="JPEG", quality=JPEG_QUALITY)
    else:
        image.save(out, format="PNG")
    return SeenImage(filename, f"image/{kind}", out.getvalue(), image)
