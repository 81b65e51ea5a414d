"""A tiny random image-text-to-text model (LLaVA: a 2-layer CLIP vision tower and the tiny Llama's shapes) saved with
its processor, built on disk offline from the tiny model's tokenizer.

`build_tiny_vlm(path, text_model_dir)` is a plain function for benchmarks; `tiny_vlm_dir` is the session-scoped
pytest fixture (registered through tests/conftest.py).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_model import tiny_text_shapes

IMAGE_TOKEN = "<image>"
IMAGE_SIZE = 32
PATCH_SIZE = 8
IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2
"""Tokens one image takes in a prompt: a feature per patch (the CLS one dropped, as LLaVA's "default" strategy does)."""
SEED = 4321

CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for part in message['content'] %}"
    "{% if part['type'] == 'image' %}{{ '<image>' }}{% elif part['type'] == 'text' %}{{ part['text'] }}{% endif %}"
    "{% endfor %}{% endif %}"
    "{{ '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
"""ChatML, as the tiny model's, with content given as parts (an image part is the image token)."""


def build_tiny_vlm(path: Path, text_model_dir: Path) -> Path:
    """Writes a ~0.3 MB random LlavaForConditionalGeneration (fp32) and its processor into `path`; returns it."""
    import torch
    from transformers import (
        AutoTokenizer,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(text_model_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": [IMAGE_TOKEN]})
    tokenizer.chat_template = CHAT_TEMPLATE
    text = LlamaConfig(**tiny_text_shapes(tokenizer))
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        projection_dim=32,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_select_strategy="default",
        vision_feature_layer=-2,
        initializer_range=1.0,
    )
    torch.manual_seed(SEED)
    model = LlavaForConditionalGeneration(config)
    size = {"shortest_edge": IMAGE_SIZE}
    image_processor = LlavaImageProcessorPil(size=size, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE})
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=PATCH_SIZE,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_vlm_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random model that sees images, on disk, built once per test session."""
    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"), tiny_model_dir)
