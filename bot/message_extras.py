"""What a message brings besides its words: its files (bot/attachments.py) and the message it replies to
(bot/replies.py), gathered before it is queued and carried in its job."""

from __future__ import annotations

from dataclasses import dataclass, field

import discord

from bot.attachments import Attached
from shared.queues.schemas import Attachment, Job, Quoted


@dataclass
class Extras:
    attached: Attached = field(default_factory=Attached)
    quoted: Quoted | None = None
    notes: list[str] = field(default_factory=list)
    """One line each, told to the author with the acknowledgement: what was left out, and why."""

    @property
    def images(self) -> list[Attachment]:
        return self.attached.images

    def carry(self, job: Job) -> None:
        """Puts the images and the quoted message in the job (only when there are some)."""
        if self.attached.images:
            job["images"] = self.attached.images
        if self.quoted is not None:
            job["quoted"] = self.quoted


def needs_reading(message: discord.Message, bot_id: int) -> bool:
    """Whether taking the message in reads something of Discord's (its files, or a message replied to that Discord
    did not send), or quotes someone other than the bot: then its author's consent is asked first."""
    if message.attachments:
        return True
    if message.type is not discord.MessageType.reply or message.reference is None:
        return False
    found = message.reference.resolved
    return not (isinstance(found, discord.Message) and found.author.id == bot_id)
