"""What a message's files bring to its question: images go to the runner as metadata (never their bytes), text files
are read in as fenced blocks headed with their names, Discord's `message.txt` of a long paste is the message's own
text, and every file left out gets a note. Only an opted-in person's files are ever read."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import PurePosixPath

import aiohttp
import discord

from shared.queues.schemas import Attachment

log = logging.getLogger(__name__)

IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/webp", "image/gif"})
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".gif"})
"""What is passed on as an image (the runner decides the real type from the bytes)."""

TEXT_LANGUAGES = {
    ".txt": "",
    ".log": "",
    ".md": "markdown",
    ".py": "py",
    ".js": "js",
    ".ts": "ts",
    ".tsx": "tsx",
    ".jsx": "jsx",
    ".json": "json",
    ".yaml": "yaml",
    ".yml": "yaml",
    ".toml": "toml",
    ".csv": "csv",
    ".ini": "ini",
    ".cfg": "ini",
    ".sh": "sh",
    ".sql": "sql",
    ".html": "html",
    ".css": "css",
    ".xml": "xml",
    ".c": "c",
    ".h": "c",
    ".cpp": "cpp",
    ".rs": "rust",
    ".go": "go",
    ".java": "java",
    ".kt": "kotlin",
    ".rb": "ruby",
    ".php": "php",
    ".lua": "lua",
}
"""Text files by extension (besides any `text/*` type), with the language their fenced block is marked with."""

LONG_PASTE_NAME = "message.txt"
"""What Discord names the file a long paste becomes: it is the message's own text."""

TEXT_FILE_MAX_BYTES = 1_000_000
"""Larger text files are not read (a question holds MAX_INPUT_CHARS at most anyway)."""

READ_TIMEOUT_S = 10.0
"""How long reading one file may take before it is left out."""

READ_ERRORS = (discord.HTTPException, aiohttp.ClientError, OSError, TimeoutError, UnicodeDecodeError)


@dataclass
class Attached:
    """What a message's files add: text for the question, images for the model, and notes on what was left out."""

    paste: str = ""
    """The text of Discord's message.txt (a long paste), which comes first."""
    blocks: list[str] = field(default_factory=list)
    """The other text files, each a fenced block headed with its name."""
    images: list[Attachment] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def question(self, text: str) -> str:
        """The message's text with what its files say: the paste, then the files."""
        parts = [part for part in (text.strip(), self.paste.strip(), *self.blocks) if part]
        return "\n\n".join(parts)


def kind_of(attachment: discord.Attachment) -> str:
    """Whether a file is an "image", "text" or "other", from Discord's content type or else its extension."""
    content_type = (attachment.content_type or "").split(";")[0].strip().lower()
    extension = PurePosixPath(attachment.filename.lower()).suffix
    if content_type in IMAGE_TYPES or (not content_type and extension in IMAGE_EXTENSIONS):
        return "image"
    if content_type.startswith("text/") or extension in TEXT_LANGUAGES:
        return "text"
    return "other"


def image_of(attachment: discord.Attachment) -> Attachment:
    image: Attachment = {
        "url": attachment.url,
        "filename": attachment.filename,
        "content_type": attachment.content_type or "",
        "size": attachment.size,
    }
    if attachment.width is not None and attachment.height is not None:
        image["width"], image["height"] = attachment.width, attachment.height
    return image


def fenced(filename: str, text: str) -> str:
    """A file as the model reads it: its name, then its text in a fence longer than any run of backticks in it."""
    language = TEXT_LANGUAGES.get(PurePosixPath(filename.lower()).suffix, "")
    fence = "`" * max(3, _longest_backtick_run(text) + 1)
    return f"{filename}:\n{fence}{language}\n{text.rstrip()}\n{fence}"


def _longest_backtick_run(text: str) -> int:
    longest = run = 0
    for char in text:
        run = run + 1 if char == "`" else 0
        longest = max(longest, run)
    return longest


async def read_attachments(attachments: Sequence[discord.Attachment], *, max_images: int) -> Attached:
    """Reads a message's files (the author opted in: the caller checked); never raises for a bad file."""
    attached = Attached()
    skipped_images: list[str] = []
    for attachment in attachments:
        kind = kind_of(attachment)
        if kind == "image":
            if len(attached.images) < max_images:
                attached.images.append(image_of(attachment))
            else:
                skipped_images.append(attachment.filename)
        elif kind == "text":
            await _read_text(attachment, attached)
        else:
            attached.notes.append(f"I didn't read `{attachment.filename}`: I read only text files and images.")
    if skipped_images:
        attached.notes.append(
            f"I look at {max_images} images at most, so I left out {', '.join(f'`{n}`' for n in skipped_images)}."
        )
    return attached


async def _read_text(attachment: discord.Attachment, attached: Attached) -> None:
    name = attachment.filename
    if attachment.size > TEXT_FILE_MAX_BYTES:
        attached.notes.append(f"I didn't read `{name}`: it is over {TEXT_FILE_MAX_BYTES // 1_000_000} MB.")
        return
    try:
        text = (await asyncio.wait_for(attachment.read(), READ_TIMEOUT_S)).decode("utf-8")
    except UnicodeDecodeError:
        attached.notes.append(f"I didn't read `{name}`: it isn't UTF-8 text.")
        return
    except READ_ERRORS as exc:
        log.warning("could not read attachment %s: %s", attachment.id, type(exc).__name__)
        attached.notes.append(f"I couldn't fetch `{name}` from Discord, so I answered without it.")
        return
    if name == LONG_PASTE_NAME and not attached.paste:
        attached.paste = text
    else:
        attached.blocks.append(fenced(name, text))
