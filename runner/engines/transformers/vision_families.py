"""What each family of image-text-to-text models needs in its forward besides the batch's token ids, attention mask,
1-D positions and key/value cache: the images' tensors in a job's prefill, and for some families inputs of their own
in the prefill and at every decoding step, built for the rows of the running batch.

- LLaVA, Idefics3, SmolVLM: the images' tensors in the prefill, nothing else.
- Gemma 3: the prefill's image token types (its image tokens see each other both ways).
- Qwen2-VL, Qwen2.5-VL: 3-D rotary positions (time, height, width) for the image tokens; the text after an image
  goes on from the image's largest position, so each job decodes at its 1-D position plus its own offset.
- Mllama (Llama 3.2 Vision): the images are read by cross-attention layers whose cache holds their states, not the
  tokens' (RollingBatch's fixed layers), under a mask of which image tiles each token sees, at every step.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import torch

from runner.engines.transformers.rolling_batch import RollingBatch

if TYPE_CHECKING:
    from transformers import PreTrainedModel

Tensors = dict[str, torch.Tensor]

DEFAULT_IMAGE_SIDE = 2048
"""The longest side an image is scaled down to when the processor's settings do not say what the model takes."""
SHORTEST_EDGE_ASPECT = 4
"""A processor that sizes images by their shortest edge (or their area) is given images up to this aspect ratio."""


@dataclass
class JobImages:
    """One job's image inputs, from its processor's output."""

    tensors: Tensors
    """Read in its prefill, stacked with other jobs' along the first dimension (pixel values...)."""
    per_token: Tensors = field(default_factory=dict)
    """Tensors with an entry per prompt token ([tokens, ...]), left-padded with zeros with the batch's prompts."""
    decoding: torch.Tensor | None = None
    """What each of its decoding steps needs (M-RoPE: its position offset; Mllama: the tiles its answer sees)."""


class ImageFamily:
    """LLaVA, Idefics3, SmolVLM: a job's images are read in its prefill, and it then decodes as text."""

    reads_images_alone: ClassVar[bool] = False
    """Whether a job with images is read in a prefill of its own (not beside other jobs')."""

    def __init__(self, model: PreTrainedModel) -> None:
        self.model: Any = model

    def batch(self) -> RollingBatch:
        return RollingBatch()

    def image_side(self, image_processor: Any) -> int:
        return image_side(image_processor)

    def job_images(self, ids: list[int], processed: Tensors) -> JobImages:
        """What a job's prefill and steps are given, from the processor's tensors (its ids and mask left out)."""
        return JobImages(processed)

    def prefill_inputs(self, jobs: Sequence[JobImages | None], width: int, positions: torch.Tensor) -> dict[str, Any]:
        """The forward's inputs for a prefill of these jobs' prompts (None: a text-only job), left-padded to
        `width` tokens, with their 1-D positions [rows, width]."""
        seeing = [job for job in jobs if job is not None]
        inputs: dict[str, Any] = {"position_ids": positions}
        if not seeing:
            return inputs
        inputs.update(merged([job.tensors for job in seeing]))
        for key in dict.fromkeys(key for job in seeing for key in job.per_token):
            inputs[key] = _left_padded([None if job is None else job.per_token.get(key) for job in jobs], width)
        return inputs

    def decode_inputs(
        self, jobs: Sequence[JobImages | None], positions: torch.Tensor, batch: RollingBatch
    ) -> dict[str, Any]:
        """The forward's inputs for a decoding step of the running rows, at their 1-D positions [rows, 1]."""
        return {"position_ids": positions}


class TokenTypeFamily(ImageFamily):
    """Gemma 3: the prefill is given which tokens are image tokens (token_type_ids), so that an image's tokens
    attend to each other both ways; decoding steps need nothing more (as in the model's own `generate`)."""

    def job_images(self, ids: list[int], processed: Tensors) -> JobImages:
        token_types = processed.pop("token_type_ids")[0]
        return JobImages(processed, {"token_type_ids": token_types})


class MropeFamily(ImageFamily):
    """Qwen2-VL, Qwen2.5-VL: 3-D rotary positions, worked out once per job by the model's own get_rope_index."""

    def image_side(self, image_processor: Any) -> int:
        # Its size settings are areas in pixels (min_pixels, max_pixels), not sides.
        area = _size(image_processor.size, "longest_edge") or _size(image_processor.size, "max_pixels")
        return int((area * SHORTEST_EDGE_ASPECT) ** 0.5) if area else DEFAULT_IMAGE_SIDE

    def job_images(self, ids: list[int], processed: Tensors) -> JobImages:
        token_types = processed.pop("mm_token_type_ids")
        positions, offset = self.model.model.get_rope_index(
            torch.tensor([ids]), mm_token_type_ids=token_types, image_grid_thw=processed.get("image_grid_thw")
        )
        return JobImages(processed, {"position_ids": positions[:, 0].T}, offset.reshape(1))

    def prefill_inputs(self, jobs: Sequence[JobImages | None], width: int, positions: torch.Tensor) -> dict[str, Any]:
        inputs = super().prefill_inputs(jobs, width, positions)
        if any(job is not None for job in jobs):
            # A text-only row's 3-D positions are its 1-D ones, three times (as the model makes them).
            own = inputs["position_ids"].to(positions.device)  # [rows, width, 3], zeros for text rows
            text = torch.tensor([job is None for job in jobs], device=positions.device)
            inputs["position_ids"] = torch.where(text[:, None, None], positions[..., None], own).permute(2, 0, 1)
        return inputs

    def decode_inputs(
        self, jobs: Sequence[JobImages | None], positions: torch.Tensor, batch: RollingBatch
    ) -> dict[str, Any]:
        offsets = [None if job is None else job.decoding for job in jobs]
        if all(offset is None for offset in offsets):
            return {"position_ids": positions}
        offset = torch.cat([positions.new_zeros(1) if offset is None else offset for offset in offsets])
        return {"position_ids": positions + offset.to(positions.device)[:, None]}


class CrossAttentionFamily(ImageFamily):
    """Mllama: a job's images are read alone in its prefill (the cross-attention layers cache their states), then
    every decoding step of a batch holding one is given which tiles each row sees (a text-only row: none)."""

    reads_images_alone = True

    def batch(self) -> RollingBatch:
        layers = self.model.config.get_text_config().cross_attention_layers
        return RollingBatch(fixed_layers=frozenset(layers))

    def image_side(self, image_processor: Any) -> int:
        # Its size is a tile's, and an image spans up to max_image_tiles of them.
        tiles = int(getattr(image_processor, "max_image_tiles", 1) or 1)
        return image_side(image_processor) * tiles

    def job_images(self, ids: list[int], processed: Tensors) -> JobImages:
        seen = processed.pop("cross_attention_mask")[0]  # [tokens, images, tiles]
        # As `generate` does: each new token sees the tiles the prompt's last token sees.
        return JobImages(processed, {"cross_attention_mask": seen}, seen[-1])

    def decode_inputs(
        self, jobs: Sequence[JobImages | None], positions: torch.Tensor, batch: RollingBatch
    ) -> dict[str, Any]:
        inputs: dict[str, Any] = {"position_ids": positions}
        if not batch.fixed_length:
            return inputs
        tiles = self.model.config.vision_config.max_num_tiles
        images = batch.fixed_length // (tiles * self.model.model.vision_model.num_patches)
        seen = positions.new_zeros(len(jobs), 1, images, tiles)
        for row, job in enumerate(jobs):
            if job is not None and job.decoding is not None:
                seen[row, 0, : job.decoding.shape[0]] = job.decoding
        inputs["cross_attention_mask"] = seen
        return inputs


FAMILIES: dict[str, type[ImageFamily]] = {
    "llava": ImageFamily,
    "idefics3": ImageFamily,
    "smolvlm": ImageFamily,
    "gemma3": TokenTypeFamily,
    "qwen2_vl": MropeFamily,
    "qwen2_5_vl": MropeFamily,
    "mllama": CrossAttentionFamily,
}
"""Model types whose images the built-in engine shows them, each checked against the model's own `generate` in
float32, beside text-only jobs (tests/test_vision_engine.py, tests/test_vision_families.py)."""


def merged(inputs: Sequence[Tensors]) -> Tensors:
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


def _left_padded(tensors: Sequence[torch.Tensor | None], width: int) -> torch.Tensor:
    """Per-token tensors [tokens, ...] of each row as one [rows, width, ...], zeros on the left (and for None)."""
    present = [tensor for tensor in tensors if tensor is not None]
    shape = [max(sizes) for sizes in zip(*(tensor.shape[1:] for tensor in present), strict=True)]
    out = present[0].new_zeros(len(tensors), width, *shape)
    for row, tensor in enumerate(tensors):
        if tensor is not None:
            where: tuple[int | slice, ...] = (row, slice(width - tensor.shape[0], None))
            out[where + tuple(slice(0, size) for size in tensor.shape[1:])] = tensor
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
