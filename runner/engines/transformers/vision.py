"""The built-in engine for an image-text-to-text model: a job's images are read with its prompt, in the same
continuous batch as every other job.

A job with images joins the running batch as any job does: its prompt, the image tokens expanded by the model's
processor, is read in one forward with the images' pixel values (the model puts the image features where the image
tokens are), and from then on it decodes with the others, as text. So a text-only job waits at most for that
prefill. Only families whose forward takes the engine's own inputs (left-padded ids, 1-D positions, a plain
key/value cache) batch that way: see BATCHED_FAMILIES; any other loads as a text model that cannot see.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Self, cast

import torch
from jinja2 import TemplateError
from transformers import DynamicCache

from runner.engines.protocol import GenerationRequest, GenerationResult
from runner.engines.transformers.admission import Row
from runner.engines.transformers.engine import TransformersEngine
from runner.engines.transformers.prompt import fit_prompt
from runner.engines.transformers.shared_prefix import SharedPrefix
from runner.errors import ModelLoadError, PromptTooLongError
from runner.weights.loading import context_tokens
from runner.weights.vision_loading import is_image_text_to_text, load_vision_model
from shared.schemas import Turn
from shared.settings import Settings

if TYPE_CHECKING:
    from PIL.Image import Image
    from transformers import PreTrainedModel

    from runner.weights.source import ModelFiles

log = logging.getLogger(__name__)

BATCHED_FAMILIES = frozenset({"llava", "idefics3", "smolvlm"})
"""Model types whose images are read in the running batch (checked against the model's own `generate`, in float32:
tests/test_vision_engine.py). Others (Qwen2-VL's 3-D positions, Mllama's cross-attention cache, Gemma 3's image
token types) would each need inputs of their own."""
DEFAULT_IMAGE_SIDE = 2048
"""The longest side an image is scaled down to when the processor's settings do not say what the model takes."""
SHORTEST_EDGE_ASPECT = 4
"""A processor that sizes images by their shortest edge is given images up to this many times that long."""

Content = list[dict[str, str]]


@dataclass(frozen=True)
class RenderedPrompt:
    """A prompt rendered by the chat template, as text, and how many tokens it takes with its images expanded."""

    text: str
    tokens: int

    def __len__(self) -> int:
        return self.tokens


class VisionEngine(TransformersEngine):
    """TransformersEngine with a processor: prompts through the processor's chat template, images in the prefill."""

    def __init__(
        self,
        model: PreTrainedModel,
        processor: Any,
        *,
        name: str,
        system_prompt: str,
        context_tokens: int,
        max_rows: int = 1,
        token_budget: int = 0,
        sees_images: bool = True,
    ) -> None:
        tokenizer = processor.tokenizer
        if not tokenizer.chat_template and getattr(processor, "chat_template", None):
            tokenizer.chat_template = processor.chat_template
        self.processor = processor
        self.image_inputs: dict[str, dict[str, torch.Tensor]] = {}
        """The processor's image tensors (pixel values...) of each job added and not yet answered, by job id."""
        self._prefill_inputs: dict[str, torch.Tensor] = {}
        super().__init__(
            model,
            tokenizer,
            name=name,
            system_prompt=system_prompt,
            context_tokens=context_tokens,
            max_rows=max_rows,
            token_budget=token_budget,
        )
        self.sees_images = sees_images
        self.max_image_side = image_side(processor.image_processor) if sees_images else 0
        self.description += f" images={'seen' if sees_images else 'not-seen'}"

    @classmethod
    def load_vision(cls, files: ModelFiles, settings: Settings, *, sees_images: bool) -> Self:
        model, processor, dtype = load_vision_model(files, settings)
        engine = cls(
            model,
            processor,
            name=files.name,
            system_prompt=settings.system_prompt,
            context_tokens=context_tokens(model, settings.max_context_tokens),
            max_rows=settings.batch_size,
            token_budget=settings.batch_token_budget,
            sees_images=sees_images,
        )
        engine.description += f" dtype_reason=[{dtype.reason}]"
        engine.check_room(settings.max_new_tokens)
        return engine

    def read_shared_prefix(self) -> None:
        """None: prompts are read whole (an image's prefill dwarfs the system prompt's few tokens)."""

    def prompt_ids(self, request: GenerationRequest) -> list[int]:
        """The request's prompt ids, its images' tokens expanded; the images' tensors are kept for its prefill."""
        limit = min(self.context_tokens, self.token_budget)
        budget = limit - request.max_new_tokens
        if budget <= 0:
            raise PromptTooLongError(f"max_new_tokens={request.max_new_tokens} leaves no room in {limit} tokens")
        system_prompt = self.system_prompt if request.system_prompt is None else request.system_prompt
        images = [seen.image for seen in request.images] if self.sees_images else []
        extra, bare, processed = 0, "", {}
        if images:
            # What the images add to a prompt does not depend on the history: measured once, on the bare message.
            bare = self._render(system_prompt, (), request.message, len(images))
            processed = self._process(bare, images)
            extra = len(processed["input_ids"][0]) - len(self._tokens(bare))

        def render(turns: Sequence[Turn], text: str) -> RenderedPrompt:
            rendered = self._render(system_prompt, turns, text, len(images))
            return RenderedPrompt(rendered, len(self._tokens(rendered)) + extra)

        prompt = fit_prompt(render, request.history, request.message, budget)
        if not images:
            return self._tokens(prompt.text)
        inputs = processed if prompt.text == bare else self._process(prompt.text, images)
        ids = cast(list[int], inputs.pop("input_ids")[0].tolist())
        inputs.pop("attention_mask", None)
        self.image_inputs[request.job_id] = {k: v for k, v in inputs.items() if isinstance(v, torch.Tensor)}
        return ids

    def step(self) -> list[GenerationResult]:
        finished = super().step()
        for result in finished:
            self.image_inputs.pop(result.job_id, None)
        return finished

    def _read_prompts(self, joining: list[Row], prefix: SharedPrefix | None) -> None:
        """Reads the joining rows' prompts with their images (a failed batch reads each row alone, with its own)."""
        self._prefill_inputs = merged([self.image_inputs.get(row.request.job_id, {}) for row in joining])
        try:
            super()._read_prompts(joining, prefix)
        finally:
            self._prefill_inputs = {}

    def _logits(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        if not self._prefill_inputs:
            return super()._logits(input_ids, attention_mask, position_ids, cache)
        device = self.model.device
        images = {key: value.to(device) for key, value in self._prefill_inputs.items()}
        if "pixel_values" in images:
            images["pixel_values"] = images["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            output = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
                **images,
            )
        return cast(torch.Tensor, output.logits[:, -1, :].float())

    def _render(self, system_prompt: str, turns: Sequence[Turn], text: str, images: int) -> str:
        """The chat template's text for the conversation, the new message's images before its words."""
        conversation: list[dict[str, Any]] = [{"role": t["role"], "content": _text(t["content"])} for t in turns]
        message: Content = [{"type": "image"} for _ in range(images)] + _text(text)
        conversation.append({"role": "user", "content": message})
        if not system_prompt:
            return self._apply(conversation)
        try:
            return self._apply([{"role": "system", "content": _text(system_prompt)}, *conversation])
        except TemplateError:
            # As for text models (prompt.py): a template without a system role gets it in the first user message.
            first = conversation[0]
            conversation[0] = {**first, "content": _text(system_prompt) + first["content"]}
            return self._apply(conversation)

    def _apply(self, conversation: list[dict[str, Any]]) -> str:
        return cast(str, self.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False))

    def _tokens(self, text: str) -> list[int]:
        # The template writes the special tokens (BOS...) itself.
        return cast(list[int], self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _process(self, text: str, images: list[Image]) -> dict[str, Any]:
        return dict(self.processor(text=[text], images=[images], add_special_tokens=False, return_tensors="pt"))


def _text(text: str) -> Content:
    return [{"type": "text", "text": text}] if text else []


def merged(inputs: Sequence[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Several jobs' image tensors as one prefill's: stacked along the first dimension in row order (the order of
    their image tokens in the batch), other dimensions zero-padded to the largest (Idefics3's padding images)."""
    keys = [key for key in dict.fromkeys(k for one in inputs for k in one)]
    out = {}
    for key in keys:
        tensors = [one[key] for one in inputs if key in one]
        if len({t.dim() for t in tensors}) != 1:
            raise ValueError(f"image input {key} has tensors of different ranks")
        shape = [max(sizes) for sizes in zip(*(t.shape for t in tensors), strict=True)]
        padded = []
        for tensor in tensors:
            pad = [
                amount
                for size, most in zip(reversed(tensor.shape[1:]), reversed(shape[1:]), strict=True)
                for amount in (0, most - size)
            ]
            padded.append(torch.nn.functional.pad(tensor, pad) if any(pad) else tensor)
        out[key] = torch.cat(padded)
    return out


def image_side(image_processor: Any) -> int:
    """The longest side, in pixels, an image is worth giving the processor (it scales it again to what the model
    takes): from its size settings (a dict, or transformers' SizeDict), else DEFAULT_IMAGE_SIDE."""
    for size in (getattr(image_processor, "max_image_size", None), getattr(image_processor, "size", None)):
        if size is None:
            continue
        longest, height, width = _size(size, "longest_edge"), _size(size, "height"), _size(size, "width")
        shortest, max_pixels = _size(size, "shortest_edge"), _size(size, "max_pixels")
        if longest:
            return longest
        if height and width:
            return max(height, width)
        if shortest:
            return shortest * SHORTEST_EDGE_ASPECT
        if max_pixels:
            return int(max_pixels**0.5)
    return DEFAULT_IMAGE_SIDE


def _size(size: Any, key: str) -> int:
    value = size.get(key) if isinstance(size, dict) else getattr(size, key, None)
    return int(value) if isinstance(value, int | float) and value > 0 else 0


def load_transformers_engine(files: ModelFiles, settings: Settings) -> TransformersEngine:
    """The built-in engine for MODEL's files: a VisionEngine for an image-text-to-text model of a family that batches
    images, else the text engine; MODEL_SEES_IMAGES=false keeps a vision model's images from it, true requires one."""
    wanted = settings.model_sees_images
    if is_image_text_to_text(files):
        family = _model_type(files)
        if family in BATCHED_FAMILIES:
            return VisionEngine.load_vision(files, settings, sees_images=wanted is not False)
        if wanted:
            families = ", ".join(sorted(BATCHED_FAMILIES))
            raise ModelLoadError(
                f"MODEL_SEES_IMAGES=true, but the built-in engine shows images to {families} models only, not "
                f"{family}: serve it with vLLM and MODEL=openai:<id>"
            )
        log.warning("MODEL %s is a %s model: the built-in engine shows it no images", files.name, family)
    elif wanted:
        raise ModelLoadError(f"MODEL_SEES_IMAGES=true, but MODEL {files.name} is not an image-text-to-text model")
    return TransformersEngine.load(files, settings)


def _model_type(files: ModelFiles) -> str:
    from transformers import AutoConfig

    return str(AutoConfig.from_pretrained(files.directory, local_files_only=True).model_type)
