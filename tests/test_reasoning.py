"""Reasoning told apart from the answer (runner/reasoning.py), however the text is cut into chunks, and the forms an
answer takes on Discord and in history (runner/answer_forms.py); the OpenAI engine's reasoning deltas put back
into the text (runner/engines/openai/thinking.py)."""

from __future__ import annotations

import itertools

import pytest
from openai.types.chat.chat_completion_chunk import ChoiceDelta

from runner.answer_forms import EMPTY_ANSWER_TEXT, RAN_OUT_TEXT, THINKING_STATUS, FinalAnswer, final_form, partial_form
from runner.engines.openai.thinking import StreamedAnswer, reasoning_delta
from runner.reasoning import ReasoningSplitter, Split, prompt_opens_thinking, split_reasoning

SECRET = "SECRET"
"""Every word of reasoning in these texts: no answer shown may hold it."""

# text -> (visible, reasoning) of the whole text
CASES: dict[str, tuple[str, str]] = {
    "A plain answer.": ("A plain answer.", ""),
    "<think>SECRET plan</think>\n\nThe answer.": ("The answer.", "SECRET plan"),
    "\n  <think>\nSECRET\nSECRET two\n</think>\nThe answer.": ("The answer.", "\nSECRET\nSECRET two\n"),
    "<think>\n\n</think>\n\nNo thought needed.": ("No thought needed.", "\n\n"),
    "<think>SECRET a</think> <think>SECRET b</think>Two blocks.": ("Two blocks.", "SECRET aSECRET b"),
    "<think><think>SECRET</think>Repeated tag.": ("Repeated tag.", "SECRET"),
    "<think>SECRET < and </ and </thin inside</think>ok": ("ok", "SECRET < and </ and </thin inside"),
    # The prompt opened the block (DeepSeek-R1, QwQ, Qwen3 thinking templates): only the closing tag shows.
    "Okay, SECRET reasoning.\n</think>\n\nThe answer.": ("The answer.", "Okay, SECRET reasoning.\n"),
    "</think>The answer.": ("The answer.", ""),
    # Answers that write about the tags are shown as written.
    "Reasoning models end with `</think>` and go on.": ("Reasoning models end with `</think>` and go on.", ""),
    "Models write <think> first,\n</think>\nlast.": ("Models write <think> first,\n</think>\nlast.", ""),
    "An example:\n```\n<think>\n</think>\n```": ("An example:\n```\n<think>\n</think>\n```", ""),
    "Tags go last:\n```html\n</think>\n```\ndone": ("Tags go last:\n```html\n</think>\n```\ndone", ""),
    "Answer first. <think>not a block</think>": ("Answer first. <think>not a block</think>", ""),
    "<b>bold</b> <thi": ("<b>bold</b> <thi", ""),
    "<thi": ("<thi", ""),
    "<think>SECRET</think></think>after": ("</think>after", "SECRET"),
}


def feed_in_pieces(text: str, cuts: list[int]) -> tuple[list[Split], Split]:
    splitter = ReasoningSplitter()
    bounds = [0, *cuts, len(text)]
    so_far = [splitter.feed(text[a:b]) for a, b in itertools.pairwise(bounds)]
    return so_far, splitter.finish()


@pytest.mark.parametrize("text", CASES)
def test_the_whole_text_splits_into_its_answer_and_its_reasoning(text: str) -> None:
    visible, reasoning = CASES[text]
    split = split_reasoning(text)
    assert (split.visible, split.reasoning, split.thinking) == (visible, reasoning, False)


@pytest.mark.parametrize("text", CASES)
def test_any_two_cuts_anywhere_give_the_same_split_and_only_growing_answers(text: str) -> None:
    """Every pair of cut points, tags cut included (`<thi` + `nk>`, `</th` + `ink>`), and one character at a time."""
    whole = split_reasoning(text)
    cut_sets = [[i, j] for i in range(len(text) + 1) for j in range(i, len(text) + 1)]
    for cuts in [*cut_sets, list(range(1, len(text)))]:
        so_far, final = feed_in_pieces(text, cuts)
        assert final == whole, cuts
        shown = [split.visible for split in so_far]
        # Explicit blocks never show a word of their reasoning, not even for a moment.
        if text.lstrip().startswith("<think>"):
            assert not any(SECRET in visible for visible in shown), cuts
            assert all(whole.visible.startswith(visible) for visible in shown), cuts


def test_a_block_left_open_is_reasoning_to_the_end() -> None:
    """The model ran out of tokens while thinking: nothing of it is answer."""
    text = "<think>SECRET step one\nSECRET step two, and </thi"
    for i in range(len(text) + 1):
        so_far, final = feed_in_pieces(text, [i])
        assert all(split.visible == "" and split.thinking for split in so_far[1:])
        assert final == Split("", "SECRET step one\nSECRET step two, and </thi", thinking=True, implied=False)


def test_a_prompt_that_opened_the_block_is_told_by_its_end() -> None:
    assert prompt_opens_thinking("<｜Assistant｜><think>\n")
    assert prompt_opens_thinking("<|im_start|>assistant\n<think>\n")
    assert not prompt_opens_thinking("<|im_start|>assistant\n<think>\n\n</think>\n\n")  # Qwen3, thinking off
    assert not prompt_opens_thinking("<|im_start|>assistant\n")


def test_an_engine_that_knows_the_prompt_opened_the_block_hides_the_thinking_while_it_streams() -> None:
    """The engine starts the text with `<think>`: no word before the model's `</think>` is ever shown."""
    text = "<think>" + "Hmm, SECRET idea.\nSECRET more.\n</think>\n\nThe answer."
    for i in range(len(text) + 1):
        so_far, final = feed_in_pieces(text, [i])
        assert not any(SECRET in split.visible for split in so_far)
        assert (final.visible, final.implied) == ("The answer.", False)


def test_a_bare_closing_tag_is_recognised_only_as_the_first_tag_at_a_line_start() -> None:
    assert split_reasoning("SECRET thought\n  </think>  Answer").visible == "Answer"
    assert split_reasoning("SECRET thought </think> Answer").visible == "SECRET thought </think> Answer"
    later = "Plain answer.\n`</think>`\n</think>\nstill plain"
    assert split_reasoning(later).visible == later


# ---- the forms an answer takes -------------------------------------------------------------------------


def test_while_it_thinks_the_partial_is_a_short_status_then_the_answer_alone() -> None:
    assert partial_form("<think>SECRET so far", False) == THINKING_STATUS
    assert partial_form("<think>SECRET</think>\n\n", False) == THINKING_STATUS
    assert partial_form("<think>SECRET</think>\n\nThe ans", False) == "The ans"
    assert partial_form("<thi", False) == ""  # nothing to show yet
    assert partial_form("Plain words ", False) == "Plain words"


def test_shown_reasoning_is_subtext_lines_above_the_answer() -> None:
    text = "<think>\nFirst SECRET.\n\n  Second SECRET.\n</think>\n\nThe answer."
    assert partial_form(text[: text.index("Second") + 6], True) == "-# First SECRET.\n-# Second\n" + THINKING_STATUS
    assert partial_form(text, True) == "-# First SECRET.\n-# Second SECRET.\nThe answer."
    assert final_form(text, True) == FinalAnswer("-# First SECRET.\n-# Second SECRET.\nThe answer.", "The answer.")


def test_the_final_answer_holds_no_reasoning_and_never_the_status() -> None:
    assert final_form("<think>SECRET</think>\n\nThe answer.\n", False) == FinalAnswer("The answer.", "The answer.")
    assert final_form("<think>SECRET and no end", False) == FinalAnswer(RAN_OUT_TEXT, RAN_OUT_TEXT)
    assert final_form("<think>SECRET and no end", True) == FinalAnswer(
        f"-# SECRET and no end\n{RAN_OUT_TEXT}", RAN_OUT_TEXT
    )
    assert final_form("<think>\n</think>\n", False) == FinalAnswer(EMPTY_ANSWER_TEXT, EMPTY_ANSWER_TEXT)
    assert final_form("  ", True) == FinalAnswer(EMPTY_ANSWER_TEXT, EMPTY_ANSWER_TEXT)


# ---- reasoning deltas of OpenAI-compatible servers -------------------------------------------------------


def test_reasoning_deltas_are_read_from_either_field() -> None:
    assert reasoning_delta(ChoiceDelta.model_validate({"reasoning_content": "vLLM"})) == "vLLM"
    assert reasoning_delta(ChoiceDelta.model_validate({"reasoning": "Ollama", "content": ""})) == "Ollama"
    assert reasoning_delta(ChoiceDelta.model_validate({"content": "words"})) == ""


def test_reasoning_deltas_become_a_block_before_the_content() -> None:
    thinking = StreamedAnswer(reasoning="SECRET with a </think> inside")
    assert split_reasoning(thinking.text(False), finished=False).thinking
    answered = StreamedAnswer(content="The answer.", reasoning="SECRET with a </think> inside")
    split = split_reasoning(answered.text(False))
    assert (split.visible, split.reasoning) == ("The answer.", "SECRET with a  inside")


def test_a_model_known_to_think_in_the_prompts_block_starts_hidden_unless_it_stops_without_thinking() -> None:
    assert StreamedAnswer(content="SECRET\n</think>\nA").shows_prompt_opened_thinking()
    assert not StreamedAnswer(content="</think>\nA").shows_prompt_opened_thinking()
    assert not StreamedAnswer(content="A `</think>` tag").shows_prompt_opened_thinking()
    assert StreamedAnswer(content="SECRET so far").text(True) == "<think>SECRET so far"
    assert StreamedAnswer(content="SECRET cut off").text(True, "length") == "<think>SECRET cut off"
    assert StreamedAnswer(content="Straight answer.").text(True, "stop") == "Straight answer."
