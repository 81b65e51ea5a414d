"""Buttons and roles on the fake Discord against real discord.py: a message's `components`, a press as an
INTERACTION_CREATE of type 3 dispatched to a persistent view, callbacks 6 (DEFERRED_UPDATE_MESSAGE) and 7
(UPDATE_MESSAGE), and roles carried by GUILD_CREATE, members and role mentions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import discord
import pytest

from tests.fake_discord import FakeDiscord
from tests.fake_discord.interactions import DEFERRED_UPDATE_MESSAGE, UPDATE_MESSAGE
from tests.fake_discord.recording import EVENT_TIMEOUT_SECONDS, RecordingClient, running


class Buttons(discord.ui.View):
    """Two buttons with fixed ids: "later" defers then edits through @original, "now" updates in the callback."""

    def __init__(self, pressed: asyncio.Queue[discord.Interaction]) -> None:
        super().__init__(timeout=None)
        self.pressed = pressed

    @discord.ui.button(label="Later", custom_id="test:later")
    async def later(self, interaction: discord.Interaction, _: discord.ui.Button[Buttons]) -> None:
        await interaction.response.defer()
        await interaction.edit_original_response(content="edited later", view=None)
        await self.pressed.put(interaction)

    @discord.ui.button(label="Now", custom_id="test:now")
    async def now(self, interaction: discord.Interaction, _: discord.ui.Button[Buttons]) -> None:
        await interaction.response.edit_message(content="updated now", view=None)
        await self.pressed.put(interaction)


@pytest.fixture
def fake(fake_discord_in_process: FakeDiscord) -> FakeDiscord:
    return fake_discord_in_process


@pytest.fixture
async def client(fake: FakeDiscord) -> AsyncIterator[RecordingClient]:
    client = RecordingClient()
    async with running(fake, client):
        yield client


async def send_buttons(client: RecordingClient, fake: FakeDiscord) -> tuple[str, asyncio.Queue[discord.Interaction]]:
    pressed: asyncio.Queue[discord.Interaction] = asyncio.Queue()
    client.add_view(Buttons(pressed))  # persistent: no message id, as a bot registers it at start-up
    shown = Buttons(pressed)
    shown.stop()  # sent as components only: the press must reach the persistent view
    sent = await client.text_channel(fake.channel_id).send("choose", view=shown)
    return str(sent.id), pressed


async def test_a_sent_view_is_stored_as_components_and_a_press_reaches_the_persistent_view(
    client: RecordingClient, fake: FakeDiscord
) -> None:
    message_id, pressed = await send_buttons(client, fake)
    [row] = fake.message(message_id)["components"]
    assert [(b["type"], b["custom_id"], b["label"]) for b in row["components"]] == [
        (2, "test:later", "Later"),
        (2, "test:now", "Now"),
    ]
    user = fake.add_user("presser")
    handle = await fake.press_button(user, message_id, "test:later")
    interaction = await asyncio.wait_for(pressed.get(), EVENT_TIMEOUT_SECONDS)
    assert interaction.user.id == int(user["id"]) and interaction.message is not None
    assert interaction.message.id == int(message_id)
    assert interaction.data is not None and interaction.data.get("custom_id") == "test:later"
    assert handle.callback is not None and handle.callback["type"] == DEFERRED_UPDATE_MESSAGE
    message = fake.message(message_id)
    assert message["content"] == "edited later" and message["components"] == []
    assert fake.message_history(message_id) == ["choose", "edited later"]


async def test_update_message_edits_the_buttons_message_in_the_callback(
    client: RecordingClient, fake: FakeDiscord
) -> None:
    message_id, pressed = await send_buttons(client, fake)
    handle = await fake.press_button(fake.add_user("presser"), message_id, "test:now")
    await asyncio.wait_for(pressed.get(), EVENT_TIMEOUT_SECONDS)
    assert handle.callback is not None and handle.callback["type"] == UPDATE_MESSAGE
    assert fake.message(message_id)["content"] == "updated now"
    assert fake.message(message_id)["components"] == []
    with pytest.raises(LookupError):  # the buttons are gone: Discord's client offers none to press
        await fake.press_button(fake.add_user("late"), message_id, "test:now")


async def test_a_press_is_acknowledged_once(client: RecordingClient, fake: FakeDiscord) -> None:
    message_id, _ = await send_buttons(client, fake)
    handle = await fake.press_button(fake.add_user("presser"), message_id, "test:later")
    await handle.wait_responded()
    # A second acknowledgement of the same interaction is refused, whatever its type.
    async with (
        aiohttp.ClientSession() as session,
        session.post(
            f"{fake.api_base}/interactions/{handle.id}/{handle.token}/callback", json={"type": UPDATE_MESSAGE}
        ) as response,
    ):
        assert response.status == 400 and (await response.json())["code"] == 40060


async def test_roles_reach_discord_py_through_guild_create_members_and_mentions(fake: FakeDiscord) -> None:
    role_id = fake.add_role("Llama fans")
    admins = fake.add_role("Admins", administrator=True)
    fan, boss = fake.add_user("fan"), fake.add_user("boss")
    fake.give_role(fan, role_id)
    fake.give_role(boss, admins)
    client = RecordingClient()
    async with running(fake, client):
        guild = client.get_guild(int(fake.guild_id))
        assert guild is not None and guild.get_role(int(role_id)) is not None
        await fake.send_message(fan, f"hello <@&{role_id}>")
        message = await client.next_message()
        assert isinstance(message.author, discord.Member)
        assert [role.id for role in message.author.roles[1:]] == [int(role_id)]  # after @everyone
        assert message.raw_role_mentions == [int(role_id)]
        assert not message.author.guild_permissions.administrator
        await fake.send_message(boss, "hi")
        assert (await client.next_message()).author.guild_permissions.administrator  # type: ignore[union-attr]


PNG_1x1 = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c4890000000d49444154789c6360f8cf"
    "c0f01f0005000201e2b3c4c70000000049454e44ae426082"
)


async def test_attachments_reach_discord_py_and_the_cdn_serves_records_and_expires_them(fake: FakeDiscord) -> None:
    client = RecordingClient()
    async with running(fake, client):
        user = fake.add_user("sharer")
        files = [("cat.png", "image/png", PNG_1x1), ("notes.txt", None, b"hello\n")]
        await fake.send_message(user, "look", attachments=files)
        message = await client.next_message()
        image, text = message.attachments
        assert (image.filename, image.content_type, image.size, image.width, image.height) == (
            "cat.png",
            "image/png",
            len(PNG_1x1),
            1,
            1,
        )
        assert text.content_type is None and text.width is None
        assert await image.read() == PNG_1x1 and await text.read() == b"hello\n"
        fake.expire_attachment(str(image.id))
        with pytest.raises(discord.NotFound):
            await image.read()
        assert [(f.filename, f.status) for f in fake.cdn_fetches] == [
            ("cat.png", 200),
            ("notes.txt", 200),
            ("cat.png", 404),
        ]
