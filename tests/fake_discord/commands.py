"""Application (slash) commands as Discord stores them: bulk overwrites, globally or per guild, and their lookup."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field

from aiohttp import web

from tests.fake_discord.faults import ApiError, invalid_field, json_response
from tests.fake_discord.journal import Journal
from tests.fake_discord.snowflakes import Snowflakes
from tests.fake_discord.state import Payload, World

CHAT_INPUT_TYPE = 1
COMMAND_NAME = re.compile(r"[-_\w]{1,32}")
"""Discord's rule for a command's name: 1-32 word characters or dashes (lowercase for slash commands)."""
MAX_DESCRIPTION_CHARS = 100
GLOBAL_SCOPE = "global"
"""The scope name `command_syncs` records for global commands (guild commands record the guild id)."""

SERVER_FIELDS = ("id", "application_id", "version", "guild_id")
"""Fields Discord adds to a command; the rest is what the application sent, compared to tell a change."""


def _checked(body: Payload, index: int) -> Payload:
    """One command of a bulk overwrite, refused with 50035 where Discord would refuse it."""
    name = str(body.get("name", ""))
    command_type = body.get("type") or CHAT_INPUT_TYPE
    if not COMMAND_NAME.fullmatch(name) or (command_type == CHAT_INPUT_TYPE and name != name.lower()):
        raise invalid_field(f"{index}.name", "APPLICATION_COMMAND_INVALID_NAME", "Command name is invalid")
    description = body.get("description") or ""
    if command_type == CHAT_INPUT_TYPE and not 1 <= len(description) <= MAX_DESCRIPTION_CHARS:
        message = f"Must be between 1 and {MAX_DESCRIPTION_CHARS} in length."
        raise invalid_field(f"{index}.description", "BASE_TYPE_BAD_LENGTH", message)
    permissions = body.get("default_member_permissions")
    return {
        "type": command_type,
        "name": name,
        "description": description,
        "options": body.get("options") or [],
        # Discord takes the permission bits as a number or a string and always answers a string.
        "default_member_permissions": None if permissions is None else str(permissions),
        "dm_permission": body.get("dm_permission", True),
        "contexts": body.get("contexts"),
        "integration_types": body.get("integration_types", [0]),
        "nsfw": body.get("nsfw", False),
        "name_localizations": body.get("name_localizations"),
        "description_localizations": body.get("description_localizations"),
    }


@dataclass
class CommandStore:
    """The application's commands by scope (None: global, else a guild id), as the last overwrite left them."""

    application_id: str
    ids: Snowflakes
    scopes: dict[str | None, list[Payload]] = field(default_factory=dict)

    def overwrite(self, guild_id: str | None, bodies: list[Payload]) -> list[Payload]:
        """Replaces a scope's commands; one whose name and type were there keeps its id (and version, if unchanged)."""
        checked = [_checked(body, index) for index, body in enumerate(bodies)]
        names = [(command["name"], command["type"]) for command in checked]
        if len(set(names)) != len(names):
            raise invalid_field(
                "_errors", "APPLICATION_COMMANDS_DUPLICATE_NAME", "Application command names must be unique"
            )
        earlier = {(command["name"], command["type"]): command for command in self.scopes.get(guild_id, [])}
        stored = []
        for command in checked:
            before = earlier.get((command["name"], command["type"]))
            unchanged = before is not None and {k: v for k, v in before.items() if k not in SERVER_FIELDS} == command
            stored.append(
                {
                    "id": before["id"] if before else self.ids.next(),
                    "application_id": self.application_id,
                    "version": before["version"] if before and unchanged else self.ids.next(),
                    **({"guild_id": guild_id} if guild_id else {}),
                    **command,
                }
            )
        self.scopes[guild_id] = stored
        return copy.deepcopy(stored)

    def find(self, name: str, guild_id: str | None) -> Payload | None:
        """The command a user in `guild_id` (None: a DM) runs by `name`: the guild's own first, then the global one."""
        for scope in ([guild_id] if guild_id else []) + [None]:
            for command in self.scopes.get(scope, []):
                if command["name"] == name and command["type"] == CHAT_INPUT_TYPE:
                    return command
        return None


class CommandRoutes:
    """PUT (bulk overwrite) and GET of global and guild commands; each PUT is journaled in `command_syncs`."""

    def __init__(self, world: World, journal: Journal, store: CommandStore) -> None:
        self._world = world
        self._journal = journal
        self._store = store

    def add_routes(self, router: web.UrlDispatcher) -> None:
        for path in ("/applications/{app_id}/commands", "/applications/{app_id}/guilds/{guild_id}/commands"):
            router.add_get(path, self._get)
            router.add_put(path, self._put)

    def _scope(self, request: web.Request) -> str | None:
        if request.match_info["app_id"] != self._store.application_id:
            raise ApiError(403, 50001, "Missing Access")
        guild_id = request.match_info.get("guild_id")
        if guild_id is not None and guild_id not in self._world.guilds:
            # Discord answers a guild the bot is not in with Missing Access.
            raise ApiError(403, 50001, "Missing Access")
        return guild_id

    async def _get(self, request: web.Request) -> web.Response:
        return json_response(self._store.scopes.get(self._scope(request), []))

    async def _put(self, request: web.Request) -> web.Response:
        guild_id = self._scope(request)
        bodies = await request.json()
        if not isinstance(bodies, list):
            raise ApiError(400, 50035, "Invalid Form Body")
        stored = self._store.overwrite(guild_id, bodies)
        self._journal.command_syncs.append((guild_id or GLOBAL_SCOPE, [command["name"] for command in stored]))
        self._journal.notify()
        return json_response(stored)
