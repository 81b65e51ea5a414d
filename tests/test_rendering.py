"""What a job's messages show: newest text wins, the final text beats any partial, complete parts stay as they are."""

from __future__ import annotations

import time

from shared.queues.responses import PostingState
from shared.queues.schemas import Response, ResponseKind
from updater.rendering import PART_LIMIT_CHARS, STREAMING_MARKER, Action, Shown, digest, parts_of, plan, what_to_show


def response(kind: ResponseKind, content: str = "") -> Response:
    return {
        "job_id": "1",
        "user_id": "2",
        "channel_id": "3",
        "kind": kind,
        "content": content,
        "enqueued_at": time.time(),
        "completed_at": time.time(),
    }


def test_a_partial_shows_the_newest_text_read_with_the_lock_not_the_notice() -> None:
    state = PostingState(opted_in=True, partial="the newest words")
    assert what_to_show(response("partial", "ignored"), state) == Shown("the newest words", final=False)


def test_the_final_text_beats_any_partial_whatever_the_order() -> None:
    after_final = PostingState(opted_in=True, final=True, partial="an old partial")
    assert what_to_show(response("partial"), after_final) is None
    assert what_to_show(response("answer", "done"), after_final) == Shown("done", final=True)
    completed = PostingState(opted_in=True, partial="")  # the job completed: its partial text is gone
    assert what_to_show(response("partial"), completed) is None
    assert what_to_show(response("apology", "sorry"), PostingState(opted_in=True)) == Shown("sorry", final=True)


def test_only_the_last_part_of_a_partial_carries_the_marker_and_an_open_code_block_is_closed() -> None:
    assert parts_of(Shown("hello", final=False)) == [f"hello{STREAMING_MARKER}"]
    assert parts_of(Shown("hello", final=True)) == ["hello"]
    code = parts_of(Shown("look:\n```python\nprint(1)", final=False))
    assert code == [f"look:\n```python\nprint(1)\n```{STREAMING_MARKER}"]
    long = "\n".join(f"line {i} " + "x" * 50 for i in range(60))
    streaming, final = parts_of(Shown(long, final=False)), parts_of(Shown(long, final=True))
    assert len(streaming) == len(final) == 2
    assert streaming[0] == final[0], "a complete part shows the same text while streaming and at the end"
    assert all(len(part) <= 2000 for part in streaming + final)
    assert all(len(part) <= PART_LIMIT_CHARS for part in final)


def posted(parts: list[str]) -> PostingState:
    return PostingState(
        opted_in=True,
        posted={i: f"m{i}" for i in range(len(parts))},
        digests={i: digest(text) for i, text in enumerate(parts)},
    )


def test_a_growing_answer_edits_its_last_part_and_creates_the_next_never_touching_complete_ones() -> None:
    words = " ".join(f"word{i}" for i in range(450))
    before = parts_of(Shown(words[:1500], final=False))
    assert plan(Shown(words[:1500], final=False), posted(before)) == []  # nothing new: no request
    grown = Shown(words[:1800], final=False)
    assert [a.kind for a in plan(grown, posted(before))] == ["edit"]
    two_parts = parts_of(Shown(words[:2600], final=False))
    actions = plan(Shown(words[:2600], final=False), posted(before))
    assert [(a.kind, a.index) for a in actions] == [("edit", 0), ("create", 1)]
    final_actions = plan(Shown(words[:2700], final=True), posted(two_parts))
    assert [(a.kind, a.index) for a in final_actions] == [("edit", 1)], "the complete first part is left alone"


def test_a_retry_continues_in_the_same_messages_and_a_shorter_final_text_deletes_the_extra_part() -> None:
    first_try = parts_of(Shown(" ".join(f"a{i}" for i in range(600)), final=False))
    assert len(first_try) == 2
    actions = plan(Shown("a short second answer", final=True), posted(first_try))
    assert actions == [Action("edit", 0, "a short second answer", "m0"), Action("delete", 1, message_id="m1")]
    assert plan(Shown("a short second answer", final=False), posted(first_try)) == [
        Action("edit", 0, f"a short second answer{STREAMING_MARKER}", "m0")
    ], "a partial never deletes: the final text decides"
