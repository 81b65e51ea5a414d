"""A streamed chat completion's reasoning, written into its text the way runner/reasoning.py reads it.

Servers send a reasoning model's thinking in one of three ways: as `reasoning_content` (or `reasoning`) deltas
beside the content (vLLM with a reasoning parser, DeepSeek's API, llama.cpp, Ollama), as a `<think>` block at the
start of the content, or as content that ends its thinking with a bare `</think>` (the chat template opened the
block in the prompt, and no parser took it out). The first is put back into the text as a `<think>` block; the
last, once seen, tells the engine that every answer of its model starts inside a block.
"""

from __future__ import annotations

from dataclasses import dataclass

from openai.types.chat.chat_completion_chunk import ChoiceDelta

from runner.reasoning import CLOSE_TAG, OPEN_TAG, split_reasoning

REASONING_FIELDS = ("reasoning_content", "reasoning")
"""Where servers put a delta's reasoning: vLLM (before 0.10), DeepSeek, llama.cpp; Ollama, vLLM since 0.10."""


def reasoning_delta(delta: ChoiceDelta) -> str:
    """The reasoning a delta carries beside its content ("" for none)."""
    for name in REASONING_FIELDS:
        value = getattr(delta, name, None)
        if isinstance(value, str) and value:
            return value
    return ""


@dataclass
class StreamedAnswer:
    """One request's answer as it streams in: its content and its reasoning deltas, kept apart."""

    content: str = ""
    reasoning: str = ""

    def text(self, prompt_opens_thinking: bool, finish_reason: str | None = None) -> str:
        """The answer as one text, its reasoning in a `<think>` block at its start.

        `prompt_opens_thinking`: the model's answers begin inside a block. One that ended (`finish_reason` stop)
        without a `</think>` did not think after all (a question it answered directly): its content is its answer.
        """
        if self.reasoning:
            # A closing tag inside the reasoning itself would end the block early and show the rest of it.
            block = OPEN_TAG + self.reasoning.replace(CLOSE_TAG, "")
            return block + CLOSE_TAG + self.content if self.content else block
        if prompt_opens_thinking and not (finish_reason == "stop" and CLOSE_TAG not in self.content):
            return OPEN_TAG + self.content
        return self.content

    def shows_prompt_opened_thinking(self) -> bool:
        """Whether this answer ended thinking that its prompt began (a bare `</think>` after some reasoning)."""
        split = split_reasoning(self.content)
        return not self.reasoning and split.implied and bool(split.reasoning.strip())
