"""Running a command, whether typed as `!name` or run as `/name`: one function per command, so that the slash
commands are thin wrappers over what the `!` commands do."""

from __future__ import annotations

import logging

from bot import texts
from bot.commands.access import AccessCommands
from bot.commands.channels import ChannelCommands
from bot.commands.chat import open_chat
from bot.commands.invocation import Invocation
from bot.commands.models import ModelCommands
from bot.commands.operators import run_admin_command
from bot.commands.parsing import ADMIN_COMMANDS, Command
from bot.commands.personas import PersonaCommands
from bot.first_contact import FirstContacts
from bot.outbox import Outbox
from shared.config.settings import Settings
from shared.storage.client import REDIS_DOWN_ERRORS
from shared.stores.channel_access import ChannelAccess
from shared.stores.consent import ConsentRegistry
from shared.stores.queue_inspection import QueueInspection
from shared.stores.shared_threads import SharedThreads
from shared.stores.waiting_status import WaitingStatusReader

log = logging.getLogger(__name__)


class CommandRunner:
    def __init__(
        self,
        settings: Settings,
        *,
        consent: ConsentRegistry,
        waiting: WaitingStatusReader,
        model_commands: ModelCommands,
        threads: SharedThreads,
        inspection: QueueInspection,
        outbox: Outbox,
        access: ChannelAccess,
        personas: PersonaCommands,
        channels: ChannelCommands,
        access_commands: AccessCommands,
        contacts: FirstContacts,
    ) -> None:
        self.settings = settings
        self.consent = consent
        self.waiting = waiting
        self.model_commands = model_commands
        self.threads = threads
        self.inspection = inspection
        self.outbox = outbox
        self.access = access
        self.personas = personas
        self.channels = channels
        self.access_commands = access_commands
        self.contacts = contacts

    async def run(self, command: Command, invocation: Invocation) -> str | None:
        """The command's answer (None when it answered otherwise: `!chat` greets in its thread); BUSY while Redis
        is unreachable."""
        user_id = invocation.user_id
        try:
            text = await self._answer(command, invocation)
        except REDIS_DOWN_ERRORS:
            log.warning("Redis unreachable during %s for user %s", command.value, user_id)
            return texts.BUSY
        log.info("command %s%s from user %s", invocation.prefix, command.value, user_id)
        return text

    async def _answer(self, command: Command, invocation: Invocation) -> str | None:
        user_id, prefix, wake_words = invocation.user_id, invocation.prefix, self.settings.wake_words
        text: str | None
        if command is Command.OPTIN:
            text = texts.optin_text(prefix, wake_words, await self.consent.opt_in(user_id))
        elif command is Command.OPTOUT:
            text = texts.optout_text(await self.consent.opt_out(user_id))
            self.contacts.declined(invocation.user.id)  # no consent prompt for a day: they just said no
        elif command is Command.FORGET:
            opted_in = await self.consent.is_opted_in(user_id)
            text = texts.forget_text(opted_in, opted_in and await self.consent.forget(user_id))
        elif command is Command.STATUS:
            text = texts.status_text(await self.waiting.status_of(user_id))
        elif command in (Command.MODELS, Command.MODEL):
            text = await self.model_commands.run(command, invocation)
        elif command is Command.CHAT:
            text = await open_chat(
                invocation, consent=self.consent, threads=self.threads, outbox=self.outbox, access=self.access
            )
        elif command is Command.PERSONA:
            text = await self.personas.run(invocation)
        elif command is Command.CHANNELS:
            text = await self.channels.run(invocation)
        elif command is Command.ACCESS:
            text = await self.access_commands.run(invocation)
        elif command in ADMIN_COMMANDS:
            text = await run_admin_command(command, invocation, self.inspection, self.settings.admin_user_ids)
        else:
            text = texts.help_text(prefix, wake_words)
        return text

    async def set_server_default(self, invocation: Invocation) -> str:
        """`/model-default`: `!model default` as a command of its own (docs/decisions/020-model-default-command.md)."""
        try:
            text = await self.model_commands.set_server_default(invocation)
        except REDIS_DOWN_ERRORS:
            log.warning("Redis unreachable during model-default for user %s", invocation.user_id)
            return texts.BUSY
        log.info("command /model-default from user %s", invocation.user_id)
        return text
