"""The built-in engine for an image-text-to-text model: a job's images are read with its prompt, in the same
continuous batch as every other job.

A job with images joins the running batch as any job does: its prompt, the image tokens expanded by the model's
processor, is read in one forward with the images' pixel values (the model puts the image features where the image
tokens are, or, for Mllama, caches them for its cross-attention layers), and from then on it decodes with the
others. So a text-only job waits at most for that prefill. What a family's forward needs besides the engine's own
inputs (3-D positions, image token types, which image tiles a token sees) is built for each forward by its
ImageFamily (vision_families.py); a family not in FAMILIES loads as a text model that cannot see.
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
from runner.engines.transformers.vision_families import FAMILIES, ImageFamily, JobImages
from runner.errors import ModelLoadError, PromptTooLongError
from runner.weights.loading import context_tokens
from runner.weights.vision_loading import is_image_text_to_text, load_vision_model
from shared.config.settings import Settings
from shared.queues.schemas import Turn

if TYPE_CHECKING:
    from PIL.Image import Image
    from transformers import PreTrainedModel

    from runner.weights.source import ModelFiles

log = logging.getLogger(__name__)

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
        self.chat_template = getattr(processor, "chat_template", None) or tokenizer.chat_template
        """The processor's template (it knows image parts), else the tokenizer's."""
        if not tokenizer.chat_template:
            tokenizer.chat_template = self.chat_template
        self.processor = processor
        self.family = FAMILIES.get(str(model.config.model_type), ImageFamily)(model)
        self.image_inputs: dict[str, JobImages] = {}
        """The image inputs of each job added and not yet answered, by job id."""
        super().__init__(
            model,
            tokenizer,
            name=name,
            system_prompt=system_prompt,
            context_tokens=context_tokens,
            max_rows=max_rows,
            token_budget=token_budget,
        )
        self.batch = self.family.batch()
        self.sees_images = sees_images
        self.max_image_side = self.family.image_side(processor.image_processor) if sees_images else 0
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
        tensors = {key: value for key, value in inputs.items() if isinstance(value, torch.Tensor)}
        self.image_inputs[request.job_id] = self.family.job_images(ids, tensors)
        return ids

    def step(self) -> list[GenerationResult]:
        finished = super().step()
        for result in finished:
            self.image_inputs.pop(result.job_id, None)
        return finished

    def _prefill(self, joining: list[Row]) -> None:
        """Reads the joining rows' prompts in one forward, but where the family reads images alone (Mllama: the
        prompts before an image would see another job's padding images), each image job's in one of its own."""
        alone = [row for row in joining if self.family.reads_images_alone and row.request.job_id in self.image_inputs]
        for row in alone:
            self._read_prompts([row], None)
        together = [row for row in joining if row not in alone]
        if together:
            self._read_prompts(together, None)

    def forward(
        self,
        rows: Sequence[GenerationRequest],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        """As the text engine's, with what the model's family needs: a prefill's images, and its own inputs."""
        jobs = [self.image_inputs.get(row.job_id) for row in rows]
        if cache is not None and cache is self.batch.cache:
            inputs = self.family.decode_inputs(jobs, position_ids, self.batch)
        else:
            inputs = self.family.prefill_inputs(jobs, int(input_ids.shape[1]), position_ids)
        device = self.model.device
        inputs = {key: value.to(device) for key, value in inputs.items()}
        if "pixel_values" in inputs:
            inputs["pixel_values"] = inputs["pixel_values"].to(self.model.dtype)
        with torch.inference_mode():
            output = self.model(
                input_ids=input_ids,
                attention_mask=attention_mask,
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
                **inputs,
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
        # Through the tokenizer: a processor's own apply_chat_template may reach for its video processor (SmolVLM's
        # does), which the runner does not load (runner/weights/vision_loading.py).
        return cast(
            str,
            self.tokenizer.apply_chat_template(
                conversation, chat_template=self.chat_template, add_generation_prompt=True, tokenize=False
            ),
        )

    def _tokens(self, text: str) -> list[int]:
        # The template writes the special tokens (BOS...) itself.
        return cast(list[int], self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _process(self, text: str, images: list[Image]) -> dict[str, Any]:
        return dict(self.processor(text=[text], images=[images], add_special_tokens=False, return_tensors="pt"))


def _text(text: str) -> Content:
    return [{"type": "text", "text": text}] if text else []


def load_transformers_engine(files: ModelFiles, settings: Settings) -> TransformersEngine:
    """The built-in engine for MODEL's files: a VisionEngine for an image-text-to-text model of a family it shows
    images to, else the text engine; MODEL_SEES_IMAGES=false keeps a vision model's images from it, true requires
    one."""
    wanted = settings.model_sees_images
    if is_image_text_to_text(files):
        family = _model_type(files)
        if family in FAMILIES:
            return VisionEngine.load_vision(files, settings, sees_images=wanted is not False)
        if wanted:
            families = ", ".join(sorted(FAMILIES))
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
