"""Key builders: one hash tag for every key, and every per-user key known to opt-out."""

from __future__ import annotations

import inspect

from shared.keys import Keys


def test_every_key_shares_one_hash_tag() -> None:
    k = Keys()
    built = [
        k.optin,
        k.query,
        k.response,
        k.dead,
        k.workers("runner"),
        k.heartbeat("runner", "r1"),
        k.processing("r1"),
        k.posting("u1"),
        k.posted("99"),
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
    assert sorted(per_user) == ["history", "inflight", "pending", "rate", "seen"]
    assert sorted(k.user_keys("42")) == sorted(getattr(k, name)("42") for name in per_user)


def test_namespace_separates_deployments() -> None:
    assert Keys("other").query == "{other}:query" and Keys("other").history("1") == "{other}:history:1"
    assert Keys().inflight_prefix + "42" == Keys().inflight("42")
