"""Loading an image-text-to-text model (transformers' AutoModelForImageTextToText) with its AutoProcessor: the
models the built-in engine shows images to (SmolVLM, Idefics3, LLaVA, Gemma 3, Qwen2-VL...)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from runner.errors import ModelLoadError, one_line
from runner.weights.freed_memory import return_freed_memory
from runner.weights.fusing import merge_projections
from runner.weights.loading import DtypeChoice, choose_device, choose_dtype
from runner.weights.packing import pack_linear_layers
from shared.settings import Settings

if TYPE_CHECKING:
    from transformers import PreTrainedModel

    from runner.weights.source import ModelFiles

PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")
"""One of them is saved with a model's processor (its image processor's settings)."""


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
    from transformers import AutoModelForImageTextToText, AutoProcessor

    device = choose_device(settings.device)
    choice = choose_dtype(settings.dtype, device)
    try:
        processor = AutoProcessor.from_pretrained(files.directory, local_files_only=True)  # type: ignore[no-untyped-call]
        model = AutoModelForImageTextToText.from_pretrained(files.directory, dtype=choice.dtype, local_files_only=True)
        model.to(device).eval()  # type: ignore[arg-type]
        if device == "cpu":
            # The language model only: its projections are what every decoding step multiplies by.
            merge_projections(model.get_decoder())  # type: ignore[no-untyped-call]
            pack_linear_layers(model, settings.batch_size, float16_weights=choice.float16_weights)
            return_freed_memory()
    except (OSError, ValueError, ImportError, RuntimeError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"MODEL {files.name} could not be loaded: {one_line(exc)}") from None
    if getattr(processor, "image_processor", None) is None or getattr(processor, "tokenizer", None) is None:
        raise ModelLoadError(f"MODEL {files.name}: its processor has no image processor or no tokenizer")
    return model, processor, choice
