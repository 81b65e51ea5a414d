"""What the author of a message is told, in one line each, about images the model did not see."""

from __future__ import annotations

from collections.abc import Sequence

from shared.queues.notes import one_line
from shared.queues.schemas import Attachment

FILENAME_MAX_CHARS = 60


def shown_name(filename: str) -> str:
    """A file name as a note quotes it: one line, short, without the backticks that would end the quote."""
    name = one_line(filename.replace("`", "'"), FILENAME_MAX_CHARS) or "image"
    return f"`{name}`"


def left_out_text(filename: str, reason: str) -> str:
    return f"I couldn't see {shown_name(filename)}: {reason}, so I answered without it."


def too_many_text(max_images: int, left_out: Sequence[Attachment]) -> str:
    names = ", ".join(shown_name(image["filename"]) for image in left_out)
    return f"I look at {max_images} images of a message at most, so I left out {names}."


def not_seen_text(model: str, images: int, seeing: Sequence[str] | None, prefix: str) -> str:
    """The model cannot see images: said once for all of them, with the served models that can (None: unknown)."""
    what = "the image" if images == 1 else f"the {images} images"
    text = f"`{model}` can't see images, so I answered from the words alone, without {what}."
    if seeing is None:
        return f"{text} `{prefix}models` says which models can."
    if not seeing:
        return f"{text} No model served right now can see them."
    choices = " or ".join(f"`{prefix}model {name}`" for name in seeing[:3])
    return f"{text} {choices} picks a model that can."


def placeholders(images: Sequence[Attachment]) -> str:
    """What a conversation's history keeps of a message's images: their names, never their bytes."""
    return " ".join(f"[image: {one_line(image['filename'], FILENAME_MAX_CHARS)}]" for image in images)


def with_placeholders(text: str, images: Sequence[Attachment]) -> str:
    """A message's words followed by a placeholder for each of its images (`[image: cat.png]`)."""
    if not images:
        return text
    return f"{text}\n{placeholders(images)}" if text.strip() else placeholders(images)
