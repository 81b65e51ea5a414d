"""Loading an image-text-to-text model (transformers' AutoModelForImageTextToText) with its processor: the models
the built-in engine shows images to (SmolVLM, Idefics3, LLaVA, Gemma 3, Qwen2-VL, Llama 3.2 Vision...)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.errors import ModelLoadError, one_line
from runner.weights.freed_memory import return_freed_memory
from runner.weights.fusing import merge_projections
from runner.weights.loading import DtypeChoice, choose_device, choose_dtype
from runner.weights.packing import pack_linear_layers
from shared.config.settings import Settings

if TYPE_CHECKING:
    from torch import nn
    from transformers import PreTrainedModel

    from runner.weights.source import ModelFiles

PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
"""One of them is saved with a model's processor (its image processor's settings)."""
NOT_PROCESSOR_SETTINGS = ("processor_class", "auto_map", "video_processor")
"""Entries of processor_config.json that are not settings of the processor itself."""


def is_image_text_to_text(files: ModelFiles) -> bool:
    """Whether the model's config is one transformers loads with AutoModelForImageTextToText, and a processor for
    its images was saved with it (a GGUF file never is: transformers reads only the text model from one)."""
    if files.gguf_file or not any((files.directory / name).is_file() for name in PROCESSOR_FILES):
        return False
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(files.directory, local_files_only=True)
    except (OSError, ValueError, KeyError):
        return False
    return config.model_type in MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES


def load_vision_model(files: ModelFiles, settings: Settings) -> tuple[PreTrainedModel, Any, DtypeChoice]:
    """The model, its processor and the dtype chosen, as load_model does for a text model; raises ModelLoadError."""
    from transformers import AutoModelForImageTextToText

    device = choose_device(settings.device)
    choice = choose_dtype(settings.dtype, device)
    try:
        processor = load_processor(files.directory)
        model = AutoModelForImageTextToText.from_pretrained(files.directory, dtype=choice.dtype, local_files_only=True)
        model.to(device).eval()  # type: ignore[arg-type]
        if device == "cpu":
            # The language model only: its projections are what every decoding step multiplies by.
            merge_token_projections(model.get_decoder())  # type: ignore[no-untyped-call]
            pack_linear_layers(model, settings.batch_size, float16_weights=choice.float16_weights)
            return_freed_memory()
    except (OSError, ValueError, ImportError, RuntimeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"MODEL {files.name} could not be loaded: {one_line(exc)}") from None
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ModelLoadError(f"MODEL {files.name}: its processor has no image processor or no tokenizer")
    return model, processor, choice


def load_processor(directory: Path) -> Any:
    """The model's processor, without the video processor some carry (Qwen2-VL's, SmolVLM's): the runner shows
    images only, and transformers' video processors need torchvision, which has no CPU build on PyPI."""
    from transformers import AutoImageProcessor, AutoProcessor, AutoTokenizer

    kind = _processor_class(directory)
    if kind is None or "video_processor" not in kind.get_attributes():
        return AutoProcessor.from_pretrained(directory, local_files_only=True)  # type: ignore[no-untyped-call]

    class WithoutVideos(kind):  # type: ignore[misc,valid-type]
        def __init__(self, image_processor: Any, tokenizer: Any, **settings: Any) -> None:
            super().__init__(image_processor, tokenizer, None, **settings)

        @classmethod
        def get_attributes(cls) -> list[str]:
            return [name for name in super().get_attributes() if name != "video_processor"]

    settings, _ = kind.get_processor_dict(directory, local_files_only=True)
    image_processor = AutoImageProcessor.from_pretrained(directory, local_files_only=True)  # type: ignore[no-untyped-call]
    tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
    return WithoutVideos(
        image_processor,
        tokenizer,
        **{key: value for key, value in settings.items() if key not in NOT_PROCESSOR_SETTINGS},
    )


def _processor_class(directory: Path) -> Any:
    """The processor class named where AutoProcessor looks for it (processor_config.json, else the image
    processor's preprocessor_config.json, as Qwen2-VL's files have it), else the one of the model's type."""
    from transformers import AutoConfig
    from transformers.models.auto.auto_mappings import PROCESSOR_MAPPING_NAMES
    from transformers.models.auto.processing_auto import processor_class_from_name

    for file in PROCESSOR_FILES:
        path = directory / file
        name = json.loads(path.read_text()).get("processor_class") if path.is_file() else None
        if isinstance(name, str):
            return processor_class_from_name(name)
    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    name = PROCESSOR_MAPPING_NAMES.get(config.model_type)
    return processor_class_from_name(name) if isinstance(name, str) else None


def merge_token_projections(decoder: nn.Module) -> None:
    """merge_projections for the decoder's layers, but for cross-attention (Mllama's), whose keys and values read
    the image states, not the tokens its queries read: merged, each of its calls would compute all three."""
    layers = getattr(decoder, "layers", None)
    if layers is None:
        merge_projections(decoder)
        return
    for layer in layers:
        merge_projections(layer.mlp if hasattr(layer, "cross_attn") else layer)
