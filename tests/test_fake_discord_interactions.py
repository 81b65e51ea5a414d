"""Slash commands on the fake Discord against discord.py's CommandTree: sync, invoke, answer, defer, follow up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import discord
import pytest
from discord import app_commands

from tests.fake_discord import FakeDiscord
from tests.fake_discord.recording import EVENT_TIMEOUT_SECONDS, RecordingClient, running


class CommandClient(RecordingClient):
    """A client with a CommandTree; command callbacks report what they saw and did through `outcomes`."""

    def __init__(self) -> None:
        super().__init__()
        self.tree = app_commands.CommandTree(self)
        self.outcomes: asyncio.Queue[Any] = asyncio.Queue()

    async def next_outcome(self) -> Any:
        return await asyncio.wait_for(self.outcomes.get(), EVENT_TIMEOUT_SECONDS)


@pytest.fixture
def fake(fake_discord_in_process: FakeDiscord) -> FakeDiscord:
    return fake_discord_in_process


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[CommandClient]:
    client = CommandClient()
    async with running(fake, client):
        yield client


async def raw_webhook(fake: FakeDiscord, method: str, path: str, **json: Any) -> tuple[int, Any]:
    """A request to the interaction routes without discord.py, to see Discord's bare answer."""
    async with (
        aiohttp.ClientSession() as session,
        session.request(method, f"{fake.api_base}{path}", json=json or None) as response,
    ):
        return response.status, await response.json() if response.content_type == "application/json" else None


async def test_sync_stores_commands_globally_and_per_guild(client: CommandClient, fake: FakeDiscord) -> None:
    guild = discord.Object(int(fake.guild_id))

    @client.tree.command(name="ask", description="Ask the bot")
    async def ask(interaction: discord.Interaction, prompt: str) -> None: ...

    @client.tree.command(name="reset", description="Forget everything", guild=guild)
    @app_commands.default_permissions(manage_guild=True)
    async def reset(interaction: discord.Interaction) -> None: ...

    synced = await client.tree.sync()
    await client.tree.sync(guild=guild)
    [stored_ask] = fake.registered_commands()
    [stored_reset] = fake.registered_commands(fake.guild_id)
    await client.tree.sync()  # unchanged: same id and version
    ask.description = "Ask the bot anything"
    await client.tree.sync()  # changed: same id, new version
    [changed_ask] = fake.registered_commands()
    fetched = await client.tree.fetch_commands()

    assert [command.id for command in synced] == [int(stored_ask["id"])] == [command.id for command in fetched]
    assert stored_ask["options"][0] | {"name": "prompt", "type": 3, "required": True} == stored_ask["options"][0]
    assert (stored_ask["application_id"], "guild_id" in stored_ask) == (fake.bot_user["id"], False)
    assert (stored_reset["guild_id"], stored_reset["default_member_permissions"]) == (fake.guild_id, str(1 << 5))
    assert fake.registered_commands()[0]["version"] == changed_ask["version"] != stored_ask["version"]
    assert changed_ask["id"] == stored_ask["id"]
    assert fake.command_syncs == [("global", ["ask"]), (fake.guild_id, ["reset"])] + [("global", ["ask"])] * 2


async def test_a_command_gets_typed_options_and_answers_ephemerally(client: CommandClient, fake: FakeDiscord) -> None:
    @client.tree.command(name="ask", description="Ask the bot")
    async def ask(interaction: discord.Interaction, prompt: str, where: discord.TextChannel, times: int) -> None:
        await client.outcomes.put((prompt, where, times, interaction.user, interaction.channel))
        sent = await interaction.response.send_message(f"only you see: {prompt}", ephemeral=True)
        await client.outcomes.put(sent)

    await client.tree.sync()
    alice = fake.add_user("alice")
    handle = await fake.invoke_command(alice, "ask", {"prompt": "why?", "where": fake.channel_id, "times": "3"})
    prompt, where, times, user, channel = await client.next_outcome()
    sent = await client.next_outcome()
    callback = await handle.wait_responded(timeout=EVENT_TIMEOUT_SECONDS)

    assert (prompt, where.id, times) == ("why?", int(fake.channel_id), 3)
    assert isinstance(where, discord.TextChannel) and isinstance(channel, discord.TextChannel)
    assert isinstance(user, discord.Member) and user.id == int(alice["id"])
    assert (callback["type"], callback["content"], callback["flags"]) == (4, "only you see: why?", 64)
    assert handle.ephemeral and callback["after_s"] < fake.interaction_deadline_s
    assert handle.original is not None and handle.original["flags"] == 64
    assert sent.is_ephemeral() and sent.message_id == int(handle.original_id or 0)
    assert isinstance(sent.resource, discord.InteractionMessage) and sent.resource.content == callback["content"]
    with pytest.raises(KeyError):
        fake.message(str(handle.original_id))  # ephemeral: not in the channel
    assert client.own_echoes.empty()


async def test_defer_then_edits_and_follow_ups_are_recorded(client: CommandClient, fake: FakeDiscord) -> None:
    @client.tree.command(name="stream", description="Answer in parts")
    async def stream(interaction: discord.Interaction) -> None:
        deferred = await interaction.response.defer(thinking=True)
        await client.outcomes.put(deferred)
        await interaction.edit_original_response(content="The")
        await interaction.edit_original_response(content="The answer")
        extra = await interaction.followup.send("and more", wait=True)
        await client.outcomes.put(extra)

    await client.tree.sync()
    handle = await fake.invoke_command(fake.add_user("alice"), "stream")
    deferred = await client.next_outcome()
    extra = await client.next_outcome()

    assert handle.deferred and not handle.ephemeral and handle.callback is not None
    assert deferred is not None and deferred.is_thinking() and not deferred.is_ephemeral()
    assert handle.callback["after_s"] < 3.0
    assert handle.original_history == ["", "The", "The answer"] and handle.original_edits == 2
    assert handle.original is not None and handle.original["flags"] == 0 and handle.original["type"] == 20
    assert [(f["content"], f["flags"]) for f in handle.followups] == [("and more", 0)]
    assert isinstance(extra, discord.WebhookMessage) and fake.message(str(extra.id))["content"] == "and more"
    assert fake.message(str(handle.original_id))["channel_id"] == fake.channel_id


async def test_the_first_follow_up_after_a_deferral_replaces_the_thinking_message(
    client: CommandClient, fake: FakeDiscord
) -> None:
    @client.tree.command(name="think", description="Think, then answer")
    async def think(interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True)
        first = await interaction.followup.send("done thinking")
        second = await interaction.followup.send("one more", ephemeral=True)
        await client.outcomes.put((first, second))

    await client.tree.sync()
    handle = await fake.invoke_command(fake.add_user("alice"), "think")
    first, second = await client.next_outcome()

    assert first.id == int(handle.original_id or 0) and second.id != first.id
    assert handle.original_history == ["", "done thinking"] and handle.original_edits == 0
    assert [(f["content"], f["flags"]) for f in handle.followups] == [("done thinking", 64), ("one more", 64)]


async def test_answering_twice_or_late_is_refused_like_discord(client: CommandClient, fake: FakeDiscord) -> None:
    @client.tree.command(name="twice", description="Answer twice")
    async def twice(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("first")
        try:
            await interaction.response.send_message("second")
        except discord.InteractionResponded as error:
            await client.outcomes.put(error)

    @client.tree.command(name="slow", description="Answer too late")
    async def slow(interaction: discord.Interaction) -> None:
        await asyncio.sleep(0.2)
        try:
            await interaction.response.send_message("too late")
        except discord.NotFound as error:
            await client.outcomes.put(error)

    await client.tree.sync()
    alice = fake.add_user("alice")
    handle = await fake.invoke_command(alice, "twice")
    assert isinstance(await client.next_outcome(), discord.InteractionResponded)
    status, body = await raw_webhook(fake, "POST", f"/interactions/{handle.id}/{handle.token}/callback", type=4)
    fake.interaction_deadline_s = 0.1
    late = await fake.invoke_command(alice, "slow")
    refused = await client.next_outcome()

    assert (status, body["code"], body["message"]) == (400, 40060, "Interaction has already been acknowledged.")
    assert handle.callback is not None and handle.callback["content"] == "first"
    assert isinstance(refused, discord.NotFound) and refused.code == 10062
    assert (late.responded, late.refusals) == (False, [10062])


async def test_a_token_works_until_its_ttl(client: CommandClient, fake: FakeDiscord) -> None:
    @client.tree.command(name="later", description="Follow up after the token expired")
    async def later(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("now")
        await asyncio.sleep(0.3)
        try:
            await interaction.followup.send("much later")
        except discord.HTTPException as error:
            await client.outcomes.put(error)

    await client.tree.sync()
    fake.interaction_token_ttl_s = 0.2
    handle = await fake.invoke_command(fake.add_user("alice"), "later")
    expired = await client.next_outcome()

    assert (expired.status, expired.code) == (401, 50027)
    assert (handle.followups, handle.refusals) == ([], [50027])


async def test_the_original_answer_does_not_exist_before_the_callback(fake: FakeDiscord) -> None:
    client = CommandClient()
    started = asyncio.Event()

    @client.tree.command(name="wait", description="Answer when told")
    async def wait(interaction: discord.Interaction) -> None:
        started.set()
        await asyncio.sleep(0.2)
        await interaction.response.send_message("answered")

    async with running(fake, client):
        await client.tree.sync()
        handle = await fake.invoke_command(fake.add_user("alice"), "wait")
        await asyncio.wait_for(started.wait(), EVENT_TIMEOUT_SECONDS)
        original = f"/webhooks/{fake.bot_user['id']}/{handle.token}/messages/@original"
        before = await raw_webhook(fake, "PATCH", original, content="sneaky")
        await handle.wait_responded(timeout=EVENT_TIMEOUT_SECONDS)
        after = await raw_webhook(fake, "GET", original)

    assert (before[0], before[1]["code"]) == (404, 10008) and handle.refusals == [10008]
    assert after[0] == 200 and after[1]["content"] == "answered"


async def test_autocomplete_choices_are_recorded(client: CommandClient, fake: FakeDiscord) -> None:
    fruits = ["apple", "apricot", "banana"]

    async def suggest(interaction: discord.Interaction, current: str) -> list[app_commands.Choice[str]]:
        return [app_commands.Choice(name=fruit, value=fruit) for fruit in fruits if fruit.startswith(current)]

    @client.tree.command(name="pick", description="Pick a fruit")
    @app_commands.autocomplete(fruit=suggest)
    async def pick(interaction: discord.Interaction, fruit: str) -> None: ...

    await client.tree.sync()
    handle = await fake.invoke_autocomplete(fake.add_user("alice"), "pick", "fruit", "ap")
    await handle.wait_responded(timeout=EVENT_TIMEOUT_SECONDS)

    assert handle.callback is not None and handle.callback["type"] == 8
    assert handle.choices == [{"name": "apple", "value": "apple"}, {"name": "apricot", "value": "apricot"}]


async def test_subcommands_dms_and_permissions(client: CommandClient, fake: FakeDiscord) -> None:
    settings = app_commands.Group(name="settings", description="Your settings")

    @settings.command(name="set", description="Set one")
    async def set_(interaction: discord.Interaction, key: str, value: int, loud: bool = False) -> None:
        await client.outcomes.put((key, value, loud, interaction.user, interaction.channel))
        await interaction.response.send_message("saved")

    @client.tree.command(name="reset", description="Forget everything")
    @app_commands.default_permissions(manage_guild=True)
    async def reset(interaction: discord.Interaction) -> None:
        await client.outcomes.put(interaction.permissions)
        await interaction.response.send_message("reset", ephemeral=True)

    client.tree.add_command(settings)
    await client.tree.sync()
    alice = fake.add_user("alice")

    values = {"key": "k", "value": 5, "loud": True}
    in_dm = await fake.invoke_command(alice, "settings", values, subcommand="set", dm=True)
    key, value, loud, user, channel = await client.next_outcome()
    with pytest.raises(PermissionError):
        await fake.invoke_command(alice, "reset")
    with pytest.raises(LookupError):
        await fake.invoke_command(alice, "nope")
    with pytest.raises(ValueError, match="subcommand"):
        await fake.invoke_command(alice, "settings")
    as_admin = await fake.invoke_command(alice, "reset", admin=True)
    permissions = await client.next_outcome()
    await in_dm.wait_responded(timeout=EVENT_TIMEOUT_SECONDS)
    await as_admin.wait_responded(timeout=EVENT_TIMEOUT_SECONDS)

    assert (key, value, loud) == ("k", 5, True)
    assert isinstance(user, discord.User) and isinstance(channel, discord.DMChannel)
    assert permissions.administrator and permissions.manage_guild
    assert in_dm.guild_id is None and "user" in in_dm.payload and "member" not in in_dm.payload
    assert in_dm.original is not None and "guild_id" not in in_dm.original


async def test_a_partial_webhook_edits_original_and_follow_ups_are_listed_in_the_channel(
    client: CommandClient, fake: FakeDiscord
) -> None:
    """What the updater does for an `/ask` without the interaction object: `@original` by name through a partial
    webhook, and a lost follow-up found again in the channel's messages (its interaction_metadata names the
    interaction); deleting the thinking message lets an ephemeral follow-up through, as on Discord."""

    @client.tree.command(name="later", description="Deferred, answered by someone else")
    async def later(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await client.outcomes.put((interaction.application_id, interaction.token))

    @client.tree.command(name="private", description="Deferred in public, answered privately")
    async def private(interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)
        await interaction.delete_original_response()
        await interaction.followup.send("only you", ephemeral=True)
        await client.outcomes.put(None)

    await client.tree.sync()
    handle = await fake.invoke_command(fake.add_user("alice"), "later")
    application_id, token = await client.next_outcome()
    webhook = discord.Webhook.partial(int(application_id), token, client=client)
    edited = await webhook.edit_message("@original", content="part one")  # type: ignore[arg-type]
    extra = await webhook.send("part two", wait=True)
    listed = await client.http.logs_from(int(fake.channel_id), 100, after=int(handle.id))  # type: ignore[arg-type]

    assert str(edited.id) == handle.original_id and handle.original_history == ["", "part one"]
    assert [m["id"] for m in listed] == [str(extra.id), handle.original_id]
    assert listed[0]["interaction_metadata"]["id"] == handle.id
    assert listed[0]["interaction_metadata"]["original_response_message_id"] == handle.original_id

    other = await fake.invoke_command(fake.add_user("bob"), "private")
    await client.next_outcome()
    assert other.original is None and [(f["content"], f["flags"]) for f in other.followups] == [("only you", 64)]
