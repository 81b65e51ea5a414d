"""Builds a job's prompt with the tokenizer's chat template, dropping the oldest turns until it fits."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence, Sized
from typing import TYPE_CHECKING, TypeVar, cast

from jinja2 import TemplateError

from runner.errors import PromptTooLongError
from shared.queues.schemas import Turn

if TYPE_CHECKING:
    from transformers import PreTrainedTokenizerBase

P = TypeVar("P", bound=Sized)


def build_prompt_ids(
    tokenizer: PreTrainedTokenizerBase,
    system_prompt: str,
    history: Sequence[Turn],
    message: str,
    max_prompt_tokens: int,
) -> list[int]:
    """Token ids of system prompt + the newest history that fits + `message`, ending with the assistant's cue.

    Oldest exchanges go first, a user turn and the answer after it together. When the message alone is still
    too long, its end is cut off. Raises PromptTooLongError when not even an empty message would fit.
    """

    def render(turns: Sequence[Turn], text: str) -> list[int]:
        return _render(tokenizer, system_prompt, turns, text)

    return fit_prompt(render, history, message, max_prompt_tokens)


def fit_prompt(
    render: Callable[[Sequence[Turn], str], P], history: Sequence[Turn], message: str, max_prompt_tokens: int
) -> P:
    """The prompt `render` makes of the newest history and the message that fit in `max_prompt_tokens` (its length);
    see build_prompt_ids."""
    # Each candidate starts at a user turn, so exchanges are dropped whole and the template sees user first.
    starts = [i for i, turn in enumerate(history) if turn["role"] == "user"]
    if starts:
        # Fewer turns never means more tokens, so the first start that fits is found by bisection.
        low, high = 0, len(starts)
        while low < high:
            middle = (low + high) // 2
            if len(render(history[starts[middle] :], message)) <= max_prompt_tokens:
                high = middle
            else:
                low = middle + 1
        if low < len(starts):
            return render(history[starts[low] :], message)

    ids = render((), message)
    if len(ids) <= max_prompt_tokens:
        return ids
    bare = render((), "")
    if len(bare) > max_prompt_tokens:
        raise PromptTooLongError(
            f"the system prompt alone takes {len(bare)} tokens, more than the {max_prompt_tokens} left for the prompt"
        )
    # Longest beginning of the message that fits, found by bisection on its length in characters.
    low, high = 0, len(message)
    while low < high:
        middle = (low + high + 1) // 2
        if len(render((), message[:middle])) <= max_prompt_tokens:
            low = middle
        else:
            high = middle - 1
    return render((), message[:low])


def _render(tokenizer: PreTrainedTokenizerBase, system_prompt: str, turns: Sequence[Turn], text: str) -> list[int]:
    conversation: list[dict[str, str]] = [{"role": t["role"], "content": t["content"]} for t in turns]
    conversation.append({"role": "user", "content": text})
    if not system_prompt:
        return _apply_template(tokenizer, conversation)
    try:
        return _apply_template(tokenizer, [{"role": "system", "content": system_prompt}, *conversation])
    except TemplateError:
        # Some templates (Gemma 2, older Mistral) refuse a system role; their model cards put it in the first
        # user message instead.
        first = conversation[0]
        conversation[0] = {"role": first["role"], "content": f"{system_prompt}\n\n{first['content']}"}
        return _apply_template(tokenizer, conversation)


def _apply_template(tokenizer: PreTrainedTokenizerBase, conversation: list[dict[str, str]]) -> list[int]:
    encoded = tokenizer.apply_chat_template(conversation, add_generation_prompt=True, tokenize=True)
    # transformers 5 returns a BatchEncoding here; earlier versions returned the list of ids itself.
    ids = encoded["input_ids"] if isinstance(encoded, Mapping) else encoded
    return list(cast("list[int]", ids))
