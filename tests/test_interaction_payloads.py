"""An `/ask` job's interaction token: a Secret in memory (no repr or log shows it), written out only in the JSON kept
in Redis, carried from job to response; and the log filter that scrubs it from any URL."""

from __future__ import annotations

import logging
import time

import pytest

from shared.config.secret import Secret
from shared.errors import JobPayloadError
from shared.queues.job_endings import notice
from shared.queues.responses import parse_posted
from shared.queues.schemas import Job, decode_job, decode_response, encode
from shared.runtime.logs import RedactSecrets
from updater.poster import _seen_by
from updater.targets import CHANNEL_PARTS_FROM, TOKEN_MARGIN_S, token_usable

TOKEN = "aW50ZXJhY3Rpb246MTIzOnNlY3JldC10b2tlbi12YWx1ZQ"


def ask_job() -> Job:
    return {
        "id": "1234567890123456789",
        "user_id": "42",
        "channel_id": "7",
        "guild_id": "8",
        "content": "why?",
        "enqueued_at": 1.0,
        "attempts": 0,
        "interaction": {"application_id": "99", "token": Secret(TOKEN), "expires_at": 2000.0},
    }


def test_the_token_is_hidden_in_memory_and_written_out_only_in_the_stored_json() -> None:
    job = ask_job()
    assert TOKEN not in repr(job) and TOKEN not in str(job)
    raw = encode(job)
    assert TOKEN in raw
    decoded = decode_job(raw)
    assert TOKEN not in repr(decoded)
    assert decoded["interaction"]["token"].reveal() == TOKEN
    response = notice(decoded, "partial")
    assert TOKEN not in repr(response)
    assert decode_response(encode(response))["interaction"]["token"].reveal() == TOKEN


def test_a_malformed_interaction_is_refused_without_echoing_it() -> None:
    raw = encode(ask_job()).replace('"expires_at":2000.0', '"expires_at":"soon"')
    with pytest.raises(JobPayloadError) as refused:
        decode_job(raw)
    assert TOKEN not in str(refused.value)


def test_tokens_in_webhook_and_callback_urls_are_scrubbed_from_logs() -> None:
    record = logging.LogRecord(
        "discord.http",
        logging.WARNING,
        __file__,
        1,
        "%s %s responded with 429",
        ("PATCH", f"https://discord.com/api/v10/webhooks/99/{TOKEN}/messages/@original"),
        None,
    )
    RedactSecrets([]).filter(record)
    callback = f"POST /interactions/5/{TOKEN}/callback"
    record2 = logging.LogRecord("x", logging.INFO, __file__, 1, callback, None, None)
    RedactSecrets([]).filter(record2)
    assert TOKEN not in record.getMessage() and "/webhooks/99/**********/messages" in record.getMessage()
    assert TOKEN not in record2.getMessage()


def test_a_token_counts_as_expired_a_margin_before_its_end() -> None:
    reference = ask_job()["interaction"]
    assert token_usable(reference, now=2000.0 - TOKEN_MARGIN_S - 1)
    assert not token_usable(reference, now=2000.0 - TOKEN_MARGIN_S + 1)
    assert token_usable({**reference, "expires_at": time.time() + 900})


def test_parts_posted_through_the_interaction_and_in_the_channel_are_kept_apart() -> None:
    late = CHANNEL_PARTS_FROM
    state = parse_posted({"0": "10", "d0": "a", "1": "11", "w1": "1", str(late): "20", f"d{late}": "b"}, True)
    assert state.intents == {1}
    assert (_seen_by(state, 0).posted, _seen_by(state, 0).digests) == ({0: "10", 1: "11"}, {0: "a"})
    assert (_seen_by(state, late).posted, _seen_by(state, late).digests) == ({0: "20"}, {0: "b"})
