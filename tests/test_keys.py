"""Key builders: one hash tag for every key, every per-user key known to opt-out, and conversation ids."""

from __future__ import annotations

import inspect

import pytest

from shared.queues.conversation_ids import (
    is_shared,
    job_conversation,
    job_lane,
    lane_of,
    private_conversation,
    shared_conversation,
    thread_of,
)
from shared.queues.schemas import Job
from shared.storage.keys import Keys


def test_every_key_shares_one_hash_tag() -> None:
    k = Keys()
    built = [
        k.optin,
        k.query("smollm2-135m"),
        k.legacy_query,
        k.models,
        k.server("800"),
        k.response,
        k.dead,
        k.workers("runner"),
        k.heartbeat("runner", "r1"),
        k.processing("r1"),
        k.posting("u1"),
        k.posted("99"),
        k.history(private_conversation("5", "42")),
        k.history(shared_conversation("6")),
        k.inflight(shared_conversation("6")),
        k.pending(shared_conversation("6")),
        k.thread("6"),
        k.commands_synced("global"),
        k.commands_synced("800"),
        *k.user_keys("42"),
    ]
    assert all(key.startswith("{llamabot}:") for key in built)
    assert len(set(built)) == len(built)


def test_every_per_user_builder_is_in_user_keys() -> None:
    k = Keys()
    per_user = [
        name
        for name, fn in inspect.getmembers(Keys, inspect.isfunction)
        if list(inspect.signature(fn).parameters) == ["self", "user_id"] and name != "user_keys"
    ]
    assert sorted(per_user) == ["choice", "conversations", "forgets", "hinted", "rate", "seen"]
    # A user's private lane is named after them: its keys are theirs too.
    expected = [getattr(k, name)("42") for name in per_user] + [k.inflight("42"), k.pending("42")]
    assert sorted(k.user_keys("42")) == sorted(expected)


def test_keys_about_one_user_end_with_their_id_and_shared_ones_do_not() -> None:
    """What the opt-out scan in the end-to-end tests relies on: a key named after a user ends with their id."""
    k = Keys()
    assert all(key.endswith(":42") for key in k.user_keys("42"))
    assert k.history(private_conversation("5", "42")).endswith(":42")
    assert not k.history(shared_conversation("42")).endswith("user:42")


def test_namespace_separates_deployments() -> None:
    assert Keys("other").query("m") == "{other}:query:m"
    assert Keys("other").history("thread:1") == "{other}:history:thread:1"


def test_the_legacy_pattern_matches_old_per_user_histories_only() -> None:
    import fnmatch

    k = Keys()
    pattern = k.legacy_history_pattern()  # fnmatch reads the same glob as Redis here
    assert fnmatch.fnmatchcase(f"{k.prefix}history:123456", pattern)
    assert not fnmatch.fnmatchcase(k.history(private_conversation("5", "42")), pattern)
    assert not fnmatch.fnmatchcase(k.history(shared_conversation("7")), pattern)


def _job(**extra: object) -> Job:
    job: Job = {
        "id": "1",
        "user_id": "42",
        "channel_id": "5",
        "guild_id": None,
        "content": "hi",
        "enqueued_at": 0.0,
        "attempts": 0,
    }
    job.update(extra)  # type: ignore[typeddict-item]
    return job


def test_conversations_and_lanes() -> None:
    private, shared = private_conversation("5", "42"), shared_conversation("7")
    assert not is_shared(private) and is_shared(shared) and thread_of(shared) == "7"
    assert lane_of(private, "42") == "42" and lane_of(shared, "42") == shared
    assert private_conversation("5", "42") != private_conversation("6", "42") != private_conversation("5", "43")
    with pytest.raises(ValueError):
        thread_of(private)


def test_a_job_queued_before_conversations_belongs_to_its_author_in_its_channel() -> None:
    old = _job()
    assert job_conversation(old) == private_conversation("5", "42") and job_lane(old) == "42"
    new = _job(conversation=shared_conversation("7"), lane=shared_conversation("7"))
    assert job_conversation(new) == job_lane(new) == "thread:7"


@pytest.mark.parametrize("name", ["", "Upper", "a b", "x}:y", "-lead", "a" * 65, "naïve", "a/b"])
def test_a_queue_is_built_for_model_names_only(name: str) -> None:
    with pytest.raises(ValueError):
        Keys().query(name)
