"""A reasoning model behind an OpenAI-compatible server, through the real processes and the fake Discord (which
keeps every version of a message): no version posted holds its thinking, the reply says "thinking…" meanwhile,
history and Redis keep the answer alone; with SHOW_REASONING the thinking is shown as subtext, and still not kept."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runner.answer_forms import RAN_OUT_TEXT, THINKING_STATUS
from tests.e2e_support import history_key, keys_holding, replies_to
from tests.fault_support import Cluster
from tests.openai_stand_in import OpenAIStandIn, ScriptedAnswer
from tests.redis_server import RedisServer
from tests.test_openai_e2e import KEY, assert_quiet, cluster_for
from tests.test_reasoning_engines import ANSWER, SECRET, THOUGHT, cut_every
from updater.rendering import STREAMING_MARKER

pytestmark = pytest.mark.e2e

STREAMING = {"STREAM_INTERVAL_S": "0.25"}
SHOWN_THOUGHT = "-# Let me see. SECRET one: 2 + 2.\n-# SECRET two: that makes 4."


@pytest.fixture
async def stand_in() -> AsyncIterator[OpenAIStandIn]:
    server = OpenAIStandIn(api_key=KEY)
    server.chunk_delay_s = 0.12  # a few seconds of thinking: several partial edits while it lasts
    await server.start()
    yield server
    await server.stop()


async def ask(cluster: Cluster, name: str, question: str, dm: bool = False) -> tuple[list[str], list[dict[str, str]]]:
    """Every version of the bot's one reply to `name`'s question, once answered, and their conversation's history."""
    fake = cluster.fake
    [user] = await cluster.opt_in([name])
    sent = await fake.send_message(user, f"Hey Llama, {question}", dm=dm)
    await cluster.wait_answered([sent["id"]], timeout=30)
    await cluster.wait_drained(timeout=30)
    [reply] = replies_to(fake, sent["id"])
    history = json.loads(await cluster.redis.get(history_key(user["id"], str(sent["channel_id"]))) or "[]")
    return fake.message_history(reply["id"]), history


async def test_a_models_thinking_is_never_posted_or_stored_and_the_reply_says_thinking_meanwhile(
    redis_server: RedisServer, stand_in: OpenAIStandIn, tmp_path: Path
) -> None:
    stand_in.scripted["sum"] = ScriptedAnswer(cut_every(f"<think>\n{THOUGHT}</think>\n\n{ANSWER}", 3))
    stand_in.scripted["essay"] = ScriptedAnswer(cut_every(f"<think>\n{THOUGHT}", 3), finish_reason="length")
    async with cluster_for(redis_server, stand_in, tmp_path, **STREAMING) as cluster:
        versions, history = await ask(cluster, "alice", "what is the sum of 2 and 2?")
        assert versions[0] == THINKING_STATUS + STREAMING_MARKER and versions[-1] == ANSWER, versions
        assert not [v for v in versions if SECRET in v or "think>" in v], versions
        assert history == [
            {"role": "user", "content": "what is the sum of 2 and 2?"},
            {"role": "assistant", "content": ANSWER},
        ]
        # A model that thought until its token limit: one clear line, never an empty post or its thinking. (In a DM:
        # the channel's last 5 s of edits leave no room for partials there.)
        versions, history = await ask(cluster, "bob", "write me an essay", dm=True)
        assert set(versions[:-1]) == {THINKING_STATUS + STREAMING_MARKER} and versions[-1] == RAN_OUT_TEXT, versions
        assert history[1] == {"role": "assistant", "content": RAN_OUT_TEXT}
        assert await keys_holding(cluster.redis, SECRET) == []
    assert_quiet(cluster)


async def test_with_show_reasoning_the_thinking_is_subtext_above_the_answer_and_still_not_stored(
    redis_server: RedisServer, stand_in: OpenAIStandIn, tmp_path: Path
) -> None:
    thinking = tuple({"reasoning_content": THOUGHT[i : i + 4]} for i in range(0, len(THOUGHT), 4))
    stand_in.scripted["sum"] = ScriptedAnswer((*thinking, *cut_every(ANSWER, 4)))
    async with cluster_for(redis_server, stand_in, tmp_path, SHOW_REASONING="true", **STREAMING) as cluster:
        versions, history = await ask(cluster, "carol", "what is the sum of 2 and 2?")
        assert versions[-1] == f"{SHOWN_THOUGHT}\n{ANSWER}", versions
        assert any(v.startswith("-# Let me see.") and v.endswith(THINKING_STATUS + STREAMING_MARKER) for v in versions)
        assert history[1] == {"role": "assistant", "content": ANSWER}
        assert await keys_holding(cluster.redis, SECRET) == []
    assert_quiet(cluster)
