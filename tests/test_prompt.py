"""Prompt building: the chat template, oldest exchanges dropped first, over-long messages cut at the end."""

from __future__ import annotations

from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from runner.conversation import GROUP_CONVERSATION_LINE, model_view
from runner.engines.transformers.prompt import build_prompt_ids
from runner.errors import PromptTooLongError
from shared.queues.jobs import new_job
from shared.queues.schemas import Job, Turn

SYSTEM = "You are a test bot."


def turn(role: str, content: str) -> Turn:
    return {"role": role, "content": content}  # type: ignore[typeddict-item]


HISTORY = [
    turn("user", "first question about cats"),
    turn("assistant", "first answer about cats"),
    turn("user", "second question about the queue"),
    turn("assistant", "second answer about the queue"),
    turn("user", "third question about Paris"),
    turn("assistant", "third answer about Paris"),
]


@pytest.fixture(scope="module")
def tokenizer(tiny_model_dir: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def template_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> list[int]:
    return list(tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)["input_ids"])


def conversation(history: list[Turn], message: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": message}]


def test_whole_conversation_goes_through_the_chat_template(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = build_prompt_ids(tokenizer, SYSTEM, HISTORY, "new message", 10_000)
    assert ids == template_ids(tokenizer, conversation(HISTORY, "new message"))
    text = tokenizer.decode(ids)
    assert text.startswith(f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\nfirst question about cats")
    assert text.endswith("<|im_start|>user\nnew message<|im_end|>\n<|im_start|>assistant\n")


def test_oldest_exchanges_are_dropped_first(tokenizer: PreTrainedTokenizerBase) -> None:
    without_first = template_ids(tokenizer, conversation(HISTORY[2:], "new message"))
    full = template_ids(tokenizer, conversation(HISTORY, "new message"))
    for budget in (len(full) - 1, len(without_first)):
        assert build_prompt_ids(tokenizer, SYSTEM, HISTORY, "new message", budget) == without_first

    only_newest = template_ids(tokenizer, conversation(HISTORY[4:], "new message"))
    ids = build_prompt_ids(tokenizer, SYSTEM, HISTORY, "new message", len(only_newest))
    assert ids == only_newest
    assert "third answer about Paris" in tokenizer.decode(ids)


def test_no_history_fits_but_the_message_does(tokenizer: PreTrainedTokenizerBase) -> None:
    alone = template_ids(tokenizer, conversation([], "new message"))
    assert build_prompt_ids(tokenizer, SYSTEM, HISTORY, "new message", len(alone)) == alone


def test_an_orphan_assistant_turn_is_dropped_so_the_template_sees_a_user_first(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    ids = build_prompt_ids(tokenizer, SYSTEM, HISTORY[1:], "new message", 10_000)
    assert ids == template_ids(tokenizer, conversation(HISTORY[2:], "new message"))


def test_an_over_long_message_keeps_its_beginning(tokenizer: PreTrainedTokenizerBase) -> None:
    message = " ".join(f"word{i}" for i in range(200))
    budget = len(template_ids(tokenizer, conversation([], ""))) + 20
    ids = build_prompt_ids(tokenizer, SYSTEM, HISTORY, message, budget)
    assert len(ids) <= budget
    text = tokenizer.decode(ids)
    kept = text.split("<|im_start|>user\n")[1].split("<|im_end|>")[0]
    assert kept and message.startswith(kept)
    # The longest beginning that fits: one more character would not.
    assert len(template_ids(tokenizer, conversation([], message[: len(kept) + 1]))) > budget
    assert text.endswith("<|im_start|>assistant\n")


def test_a_system_prompt_too_long_for_the_budget_is_an_error(tokenizer: PreTrainedTokenizerBase) -> None:
    with pytest.raises(PromptTooLongError, match="system prompt alone"):
        build_prompt_ids(tokenizer, SYSTEM, [], "hi", 5)


def test_only_the_history_it_is_given_appears(tokenizer: PreTrainedTokenizerBase) -> None:
    alice = [turn("user", "Alice's secret plan"), turn("assistant", "noted, Alice")]
    bob = [turn("user", "Bob's question"), turn("assistant", "Bob's answer")]
    build_prompt_ids(tokenizer, SYSTEM, alice, "hello", 10_000)
    text = tokenizer.decode(build_prompt_ids(tokenizer, SYSTEM, bob, "hello", 10_000))
    assert "Bob's answer" in text
    assert "Alice" not in text


def test_no_system_prompt_means_no_system_turn(tokenizer: PreTrainedTokenizerBase) -> None:
    ids = build_prompt_ids(tokenizer, "", [], "hello", 10_000)
    assert ids == template_ids(tokenizer, [{"role": "user", "content": "hello"}])


def test_a_template_without_system_role_gets_the_system_prompt_in_the_first_user_turn(tiny_model_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        + tokenizer.chat_template
    )
    text = tokenizer.decode(build_prompt_ids(tokenizer, SYSTEM, HISTORY[4:], "hello", 10_000))
    assert text.startswith(f"<|im_start|>user\n{SYSTEM}\n\nthird question about Paris<|im_end|>")
    assert text.endswith("<|im_start|>user\nhello<|im_end|>\n<|im_start|>assistant\n")


SHARED_HISTORY: list[Turn] = [
    {"role": "user", "content": "I'd rather go to the mountains", "user_id": "1", "name": "alice"},
    {"role": "assistant", "content": "Mountains it is.", "user_id": "1"},
    {"role": "user", "content": "I prefer the sea", "user_id": "2", "name": "bob"},
    {"role": "assistant", "content": "The sea, then?", "user_id": "2"},
]


def shared_job(content: str, author: str) -> Job:
    job = new_job("9", "1", "77", content, guild_id="5", conversation="thread:77", lane="thread:77")
    job["author_name"] = author
    return job


def test_a_shared_threads_prompt_names_every_speaker_and_says_it_is_a_group(tokenizer: PreTrainedTokenizerBase) -> None:
    system, history, message = model_view(shared_job("so, which?", "alice"), SHARED_HISTORY, SYSTEM)
    assert system == f"{SYSTEM}\n\n{GROUP_CONVERSATION_LINE}"
    assert message == "alice: so, which?"
    assert [t["content"] for t in history] == [
        "alice: I'd rather go to the mountains",
        "Mountains it is.",
        "bob: I prefer the sea",
        "The sea, then?",
    ]
    assert all(set(t) == {"role", "content"} for t in history), "ids never reach the template"
    text = tokenizer.decode(build_prompt_ids(tokenizer, system, history, message, 10_000))
    assert "<|im_start|>user\nbob: I prefer the sea<|im_end|>" in text
    assert text.endswith("<|im_start|>user\nalice: so, which?<|im_end|>\n<|im_start|>assistant\n")


def test_a_private_conversations_prompt_is_the_stored_turns_unchanged() -> None:
    job = shared_job("hello", "alice")
    job["conversation"], job["lane"] = "channel:77:user:1", "1"
    system, history, message = model_view(job, HISTORY, SYSTEM)
    assert (system, history, message) == (SYSTEM, HISTORY, "hello")


def test_a_long_shared_thread_is_trimmed_oldest_exchange_first_keeping_names(
    tokenizer: PreTrainedTokenizerBase,
) -> None:
    system, history, message = model_view(shared_job("and now?", "carol"), SHARED_HISTORY * 20, SYSTEM)
    everything = len(build_prompt_ids(tokenizer, system, history, message, 100_000))
    ids = build_prompt_ids(tokenizer, system, history, message, everything - 40)
    text = tokenizer.decode(ids)
    assert len(ids) <= everything - 40
    kept = text.split("<|im_start|>user\n")[1:]
    assert kept[0].startswith(("alice: ", "bob: ")), "a cut never starts inside an exchange or loses the name"
    assert text.endswith("carol: and now?<|im_end|>\n<|im_start|>assistant\n")
