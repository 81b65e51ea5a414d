"""A tiny random Llama model with a real byte-level BPE tokenizer and a ChatML template, built on disk offline.

`build_tiny_model(path)` is a plain function for benchmarks and other fixtures; `tiny_model_dir` is the
session-scoped pytest fixture (registered through tests/conftest.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""The ChatML format SmolLM2 uses, without its built-in default system prompt."""

SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
VOCAB_SIZE = 500
SEED = 1234

_SUBJECTS = ("the cat", "a llama", "my friend", "the server", "our bot", "the model", "Paris", "a teacher", "the queue")
_VERBS = ("likes", "answers", "reads", "builds", "visits", "remembers", "explains", "counts", "writes")
_OBJECTS = (
    "the question",
    "a long message",
    "the capital of France",
    "three apples",
    "the weather",
    "some code",
    "a short story",
    "the history",
    "every job",
)
_ENDINGS = (".", "?", "!", " today.", " again.", " in Discord.")


def _training_text() -> list[str]:
    """A few hundred plain English lines; deterministic, so the vocabulary is the same on every machine."""
    lines = [f"{s.capitalize()} {v} {o}{e}" for s, v, o, e in itertools.product(_SUBJECTS, _VERBS, _OBJECTS, _ENDINGS)]
    return [*lines[::2], "What is the capital of France? Hello, how are you? 0123456789 #@!$%&*()[]{}<>"]


def build_tiny_model(path: Path) -> Path:
    """Writes a ~0.2 MB random LlamaForCausalLM (fp32, safetensors) and its tokenizer into `path`; returns it."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB_SIZE,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_training_text(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|im_start|>",
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token="<|endoftext|>",
        chat_template=CHATML_TEMPLATE,
        model_max_length=512,
    )

    config = LlamaConfig(**tiny_text_shapes(tokenizer, vocab_size=bpe.get_vocab_size()))
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(config)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


def tiny_text_shapes(tokenizer: Any, *, vocab_size: int | None = None, **overrides: Any) -> dict[str, Any]:
    """The tiny Llama's config (shapes and token ids): the tiny chat model's, and the text side of the tiny vision
    models (tests/tiny_vlm.py, tests/tiny_vlm_families.py)."""
    return {
        "vocab_size": len(tokenizer) if vocab_size is None else vocab_size,
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 512,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
        # With the usual 0.02 the random model gives every prompt the same answer, which would hide padding mistakes
        # in the batching tests.
        "initializer_range": 1.0,
        **overrides,
    }


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random chat model on disk, built once per test session."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))
