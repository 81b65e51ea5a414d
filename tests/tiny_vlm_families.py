"""Tiny random image-text-to-text models of the families whose forward needs inputs of their own (Qwen2-VL,
Qwen2.5-VL, Gemma 3, Mllama), and of Idefics3 and SmolVLM, each saved with its processor, built on disk offline
from the tiny model's tokenizer: `build_tiny_family(family, path, text_model_dir)`.

Processors are saved as a model's files are (its image processor's and tokenizer's files, processor_config.json and
the chat template), not with the processor's save_pretrained: Qwen2-VL's and SmolVLM's carry a video processor,
which needs torchvision (runner/weights/vision_loading.py loads them without it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.tiny_model import tiny_text_shapes
from tests.tiny_vlm import CHAT_TEMPLATE

FAMILY_NAMES = ("idefics3", "smolvlm", "qwen2_vl", "qwen2_5_vl", "gemma3", "mllama")
IMAGE_PART = {
    "idefics3": "<image>",
    "smolvlm": "<image>",
    "qwen2_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "qwen2_5_vl": "<|vision_start|><|image_pad|><|vision_end|>",
    "gemma3": "<start_of_image>",
    "mllama": "<|image|>",
}
"""What each family's chat template writes for an image part (its processor expands it to the image's tokens)."""
SEED = 4321


def build_tiny_family(family: str, path: Path, text_model_dir: Path) -> Path:
    """Writes a tiny random model of `family` (float32) and its processor's files into `path`; returns it."""
    import torch
    from transformers import AutoTokenizer

    template = CHAT_TEMPLATE.replace("{{ '<image>' }}", "{{ '" + IMAGE_PART[family] + "' }}")
    tokens, extra = _TOKENS[family]
    tokenizer = AutoTokenizer.from_pretrained(text_model_dir, extra_special_tokens=extra)
    tokenizer.add_special_tokens({"additional_special_tokens": tokens})
    tokenizer.chat_template = template
    torch.manual_seed(SEED)
    model, image_processor, processor_class, settings = _BUILDERS[family](tokenizer)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    image_processor.save_pretrained(path)
    tokenizer.save_pretrained(path)
    if settings:
        (path / "processor_config.json").write_text(json.dumps({"processor_class": processor_class, **settings}))
    else:  # as Qwen2-VL's and Mllama's files have it: the processor named by the image processor's settings
        preprocessor = path / "preprocessor_config.json"
        preprocessor.write_text(
            json.dumps({**json.loads(preprocessor.read_text()), "processor_class": processor_class})
        )
    (path / "chat_template.jinja").write_text(template)
    return path


def _text(tokenizer: Any, **overrides: Any) -> dict[str, Any]:
    """The tiny model's shapes (room for a few images' tokens)."""
    return tiny_text_shapes(tokenizer, **{"max_position_embeddings": 1024, **overrides})


def _idefics3(name: str) -> Callable[[Any], tuple[Any, Any, str, dict[str, Any]]]:
    """Idefics3's model, or SmolVLM's (the same code under other names; SmolVLM's processor also does videos)."""

    def build(tokenizer: Any) -> tuple[Any, Any, str, dict[str, Any]]:
        import importlib

        from transformers import LlamaConfig

        module = name.lower()
        configs = importlib.import_module(f"transformers.models.{module}.configuration_{module}")
        models = importlib.import_module(f"transformers.models.{module}.modeling_{module}")
        images = importlib.import_module(f"transformers.models.{module}.image_processing_pil_{module}")
        vision = getattr(configs, f"{name}VisionConfig")(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=32,
            patch_size=8,
        )
        config = getattr(configs, f"{name}Config")(
            vision_config=vision.to_dict(),
            text_config=LlamaConfig(**_text(tokenizer)).to_dict(),
            scale_factor=2,
            image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
            initializer_range=1.0,
        )
        # Images split into 32-px tiles and a global view: 4 tokens each ((32 / 8)² patches / 2²).
        image_processor = getattr(images, f"{name}ImageProcessorPil")(
            size={"longest_edge": 64}, max_image_size={"longest_edge": 32}
        )
        model = getattr(models, f"{name}ForConditionalGeneration")(config)
        return model, image_processor, f"{name}Processor", {"image_seq_len": 4}

    return build


def _qwen(version: str) -> Callable[[Any], tuple[Any, Any, str, dict[str, Any]]]:
    def build(tokenizer: Any) -> tuple[Any, Any, str, dict[str, Any]]:
        import transformers
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        ids = {
            "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
            "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
            "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
            "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        }
        rope = {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}
        vision: dict[str, Any] = {
            "depth": 2,
            "num_heads": 2,
            "patch_size": 8,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
        }
        if version == "2":
            vision |= {"embed_dim": 32, "hidden_size": 64}
        else:
            vision |= {"hidden_size": 32, "out_hidden_size": 64, "intermediate_size": 64, "window_size": 32}
            vision |= {"fullatt_block_indexes": [1]}
        name = "Qwen2VL" if version == "2" else "Qwen2_5_VL"
        config = getattr(transformers, f"{name}Config")(
            text_config=_text(tokenizer, rope_parameters=rope), vision_config=vision, **ids, initializer_range=1.0
        )
        model = getattr(transformers, f"{name}ForConditionalGeneration")(config)
        # Sizes are areas: images of 16² to 48² pixels, in 8-px patches merged 2×2 into a token.
        image_processor = Qwen2VLImageProcessorPil(
            min_pixels=16 * 16, max_pixels=48 * 48, patch_size=8, merge_size=2, temporal_patch_size=2
        )
        return model, image_processor, f"{name}Processor", {}

    return build


def _gemma3(tokenizer: Any) -> tuple[Any, Any, str, dict[str, Any]]:
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig
    from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil

    rope = {
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        "full_attention": {"rope_type": "default", "rope_theta": 1000000.0},
    }
    # Softer attention than the others', three layers, a full-attention one first, and 16 tokens an image: else the
    # text after an image barely reads whether its tokens attended to each other both ways (the model applies that
    # in full-attention layers only).
    text = _text(
        tokenizer,
        head_dim=16,
        query_pre_attn_scalar=16,
        sliding_window=512,
        num_hidden_layers=3,
        layer_types=["full_attention", "sliding_attention", "full_attention"],
        rope_parameters=rope,
        initializer_range=0.3,
    )
    vision = SiglipVisionConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2, image_size=32, patch_size=8
    )
    config = Gemma3Config(
        text_config=text,
        vision_config=vision.to_dict(),
        mm_tokens_per_image=16,
        boi_token_index=tokenizer.convert_tokens_to_ids("<start_of_image>"),
        eoi_token_index=tokenizer.convert_tokens_to_ids("<end_of_image>"),
        image_token_index=tokenizer.convert_tokens_to_ids("<image_soft_token>"),
        initializer_range=1.0,
        tie_word_embeddings=False,
    )
    image_processor = Gemma3ImageProcessorPil(size={"height": 32, "width": 32})
    return Gemma3ForConditionalGeneration(config), image_processor, "Gemma3Processor", {"image_seq_length": 16}


def _mllama(tokenizer: Any) -> tuple[Any, Any, str, dict[str, Any]]:
    import torch
    from transformers import MllamaConfig, MllamaForConditionalGeneration
    from transformers.models.mllama.image_processing_pil_mllama import MllamaImageProcessorPil

    ratios = [[1, 1], [1, 2], [2, 1], [1, 3], [3, 1], [1, 4], [2, 2], [4, 1]]
    vision = {
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_global_layers": 1,
        "attention_heads": 2,
        "image_size": 16,
        "patch_size": 8,
        "max_num_tiles": 4,
        "vision_output_dim": 64,
        "intermediate_layers_indices": [0],
        "supported_aspect_ratios": ratios,
    }
    config = MllamaConfig(
        text_config=_text(tokenizer, num_hidden_layers=3, cross_attention_layers=[1]),
        vision_config=vision,
        image_token_index=tokenizer.convert_tokens_to_ids("<|image|>"),
        initializer_range=1.0,
    )
    model = MllamaForConditionalGeneration(config)
    with torch.no_grad():  # its gates start at 0 (tanh(0): the images would change nothing)
        for layer in model.model.language_model.layers:
            if hasattr(layer, "cross_attn"):
                layer.cross_attn_attn_gate.fill_(1.0)
                layer.cross_attn_mlp_gate.fill_(1.0)
    # 16-px tiles, up to 4 of them an image.
    image_processor = MllamaImageProcessorPil(size={"height": 16, "width": 16}, max_image_tiles=4)
    return model, image_processor, "MllamaProcessor", {}


_BUILDERS: dict[str, Callable[[Any], tuple[Any, Any, str, dict[str, Any]]]] = {
    "idefics3": _idefics3("Idefics3"),
    "smolvlm": _idefics3("SmolVLM"),
    "qwen2_vl": _qwen("2"),
    "qwen2_5_vl": _qwen("2.5"),
    "gemma3": _gemma3,
    "mllama": _mllama,
}
_IDEFICS3_TOKENS = ["<fake_token_around_image>", "<image>", "<global-img>", "<end_of_utterance>"] + [
    f"<row_{row}_col_{col}>" for row in range(1, 3) for col in range(1, 3)
]
_TOKENS: dict[str, tuple[list[str], dict[str, str] | None]] = {
    "idefics3": (_IDEFICS3_TOKENS, None),
    "smolvlm": (_IDEFICS3_TOKENS, None),
    "qwen2_vl": (["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"], None),
    "qwen2_5_vl": (["<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"], None),
    # Gemma 3's processor reads them as the tokenizer's attributes (boi_token...), as its tokenizer_config has them.
    "gemma3": (
        [],
        {"boi_token": "<start_of_image>", "eoi_token": "<end_of_image>", "image_token": "<image_soft_token>"},
    ),
    "mllama": (["<|image|>", "<|python_tag|>"], None),
}
"""Each family's special tokens added to the tiny tokenizer, and those the tokenizer names as attributes."""
