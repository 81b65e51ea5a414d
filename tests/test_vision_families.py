"""The built-in engine shows images to each family of image-text-to-text models it names, not only LLaVA's
(tests/test_vision_engine.py): a tiny random Idefics3, SmolVLM, Qwen2-VL, Qwen2.5-VL, Gemma 3 and Mllama, each
loaded with its processor through the runner's loading path, is given the image's pixel values and its family's own
inputs, answers what its own `generate` answers (float32, greedy; every step's logits too), and batches with
text-only jobs whose answers stay what they are alone, held up by no more than the image jobs' prefills."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image

from runner.engines.choice import load_engine
from runner.engines.protocol import GenerationRequest, generate_all
from runner.engines.transformers.vision import VisionEngine
from runner.engines.transformers.vision_families import (
    CrossAttentionFamily,
    ImageFamily,
    MropeFamily,
    TokenTypeFamily,
)
from runner.images.prepare import prepare_image
from runner.images.seen import SeenImage
from tests.test_engine import tiny_settings
from tests.test_vision_engine import HISTORY, answers, request
from tests.tiny_vlm_families import FAMILY_NAMES, build_tiny_family

FAMILY_CLASSES = {
    "idefics3": ImageFamily,
    "smolvlm": ImageFamily,
    "qwen2_vl": MropeFamily,
    "qwen2_5_vl": MropeFamily,
    "gemma3": TokenTypeFamily,
    "mllama": CrossAttentionFamily,
}
RECORDED = ("input_ids", "pixel_values", "position_ids", "token_type_ids", "cross_attention_mask")
"""What each forward of the model is given that the tests look at."""


@pytest.fixture(scope="module", params=FAMILY_NAMES)
def engine(request: pytest.FixtureRequest, tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    family: str = request.param
    path = build_tiny_family(family, tmp_path_factory.mktemp(family), tiny_model_dir)
    loaded = load_engine(tiny_settings(path, batch_size=8))
    assert isinstance(loaded, VisionEngine)
    return loaded


@pytest.fixture
def given(engine: VisionEngine) -> Iterator[list[dict[str, Any]]]:
    """What the model's forward is given, call by call."""
    calls: list[dict[str, Any]] = []

    def record(_module: object, _args: object, kwargs: dict[str, Any]) -> None:
        calls.append({key: kwargs.get(key) for key in RECORDED})

    hook = engine.model.register_forward_pre_hook(record, with_kwargs=True)
    yield calls
    hook.remove()


def picture(seed: int, size: tuple[int, int] = (50, 40), name: str = "cat.png") -> SeenImage:
    """Noise: each patch differs (a plain colour's do not, and then no attention pattern among them matters)."""
    pixels = torch.randint(0, 256, (size[1], size[0], 3), generator=torch.Generator().manual_seed(seed))
    out = io.BytesIO()
    Image.fromarray(pixels.to(torch.uint8).numpy()).save(out, format="PNG")
    return prepare_image(out.getvalue(), name, max_side=256)


def family(engine: VisionEngine) -> str:
    return str(engine.model.config.model_type)


def processed(engine: VisionEngine, message: str, images: list[SeenImage]) -> dict[str, torch.Tensor]:
    """The processor's inputs for the message with the engine's system prompt, made here as its model card says."""
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": engine.system_prompt}]},
        {"role": "user", "content": [{"type": "image"} for _ in images] + [{"type": "text", "text": message}]},
    ]
    text = engine.tokenizer.apply_chat_template(
        conversation, chat_template=engine.processor.chat_template, add_generation_prompt=True, tokenize=False
    )
    pictures = [[seen.image for seen in images]]
    return dict(engine.processor(text=[text], images=pictures, add_special_tokens=False, return_tensors="pt"))


def test_each_family_loads_as_a_model_that_sees(engine: VisionEngine) -> None:
    assert engine.sees_images and "images=seen" in engine.description
    assert type(engine.family) is FAMILY_CLASSES[family(engine)]
    assert engine.max_image_side >= 32, "images are not scaled below what the model takes"
    if isinstance(engine.family, MropeFamily):
        assert engine.max_image_side == 96, "Qwen's sizes are areas: √(48² pixels × 4) for a 4:1 image"
    if isinstance(engine.family, CrossAttentionFamily):
        assert engine.max_image_side == 64, "Mllama's is a tile's, and an image spans up to 4 tiles"


def test_the_image_and_the_familys_own_inputs_reach_the_forward_and_the_answer_is_generates(
    engine: VisionEngine, given: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    logits: list[torch.Tensor] = []
    forward = engine.forward

    def recording(*args: Any) -> torch.Tensor:
        out = forward(*args)
        logits.append(out[0])
        return out

    monkeypatch.setattr(engine, "forward", recording)
    # Two images: Qwen's offset comes from the larger's 2×3 tokens; the wide one leaves Mllama padding tiles.
    images = [picture(1, (50, 40)), picture(2, (40, 20), "wide.png")]
    [result] = generate_all(engine, [request("two", "What are these?", images)])
    inputs = processed(engine, "What are these?", images)
    prompt = inputs["input_ids"][0].tolist()
    prefill, steps = given[0], given[1:]
    assert prefill["input_ids"][0].tolist() == prompt
    assert torch.equal(prefill["pixel_values"], inputs["pixel_values"]), "the prefill was given the image"
    assert len(steps) == 11 and all(step["pixel_values"] is None for step in steps), "decoding reads no image"
    if isinstance(engine.family, MropeFamily):
        positions, offset = engine.model.model.get_rope_index(**inputs)
        assert offset.item() < 0, "an image's tokens take fewer positions than tokens"
        assert torch.equal(prefill["position_ids"], positions), "the prefill was given the 3-D positions"
        assert [step["position_ids"].item() for step in steps] == [
            len(prompt) + offset.item() + step for step in range(11)
        ], "each token decodes at its 1-D position plus the job's offset"
    if isinstance(engine.family, TokenTypeFamily):
        assert torch.equal(prefill["token_type_ids"], inputs["token_type_ids"]), "image tokens attend both ways"
        assert all(step["token_type_ids"] is None for step in steps)
    if isinstance(engine.family, CrossAttentionFamily):
        seen = inputs["cross_attention_mask"]
        assert torch.equal(prefill["cross_attention_mask"], seen), "which tiles each prompt token sees"
        assert all(torch.equal(step["cross_attention_mask"], seen[:, -1:]) for step in steps), "and each new token"
    with torch.inference_mode():
        out = engine.model.generate(
            **inputs,
            max_new_tokens=12,
            min_new_tokens=12,
            do_sample=False,
            output_logits=True,
            return_dict_in_generate=True,
        )
    assert result.text == engine.tokenizer.decode(out.sequences[0, len(prompt) :], skip_special_tokens=True).strip()
    # Closer than the answer: what the model computed at each step (an input that changes a little changes these).
    assert torch.allclose(torch.stack(logits), torch.cat(out.logits), atol=1e-4), "the logits are generate's"
    assert result.prompt_tokens == len(prompt)
    assert engine.image_inputs == {}, "an answered job's image inputs are dropped"


def test_image_jobs_batch_with_text_jobs_whose_answers_stay_what_they_are_alone(
    engine: VisionEngine, given: list[dict[str, Any]]
) -> None:
    red, green = picture(1), picture(2, (80, 20), "wide.png")
    text_jobs = [request("t1", "Hello there", tokens=16), request("t2", "What is the capital of France?", tokens=16)]
    image_jobs = [request("i1", "What is this?", [red], tokens=6), request("i2", "And these?", [red, green], HISTORY)]
    late = request("t3", "Tell me more", tokens=8)
    jobs: list[GenerationRequest] = [*text_jobs, *image_jobs, late]
    alone = {job.job_id: generate_all(engine, [job])[0].text for job in jobs}
    assert alone["i1"] != alone["i2"], "different images and words, different answers"
    assert answers(generate_all(engine, jobs)) == alone, "all joining in one step"
    # Image jobs arriving while text jobs decode; a text job joining a batch that holds image jobs.
    given.clear()
    engine.add(text_jobs)
    results = engine.step() + engine.step() + engine.step()
    engine.add(image_jobs)
    results += engine.step() + engine.step()
    engine.add([late])
    while engine.unfinished:
        results += engine.step()
        if isinstance(engine.family, CrossAttentionFamily) and {"i1", "i2"} <= {r.job_id for r in results}:
            assert engine.batch.fixed_length == 0, "once no row has images, the cross-attention cache is empty"
    assert answers(results) == alone
    widths = [(len(call["input_ids"]), call["input_ids"].shape[1]) for call in given]
    image_prefills = [index for index, call in enumerate(given) if call["pixel_values"] is not None]
    assert widths[image_prefills[0] - 1] == (2, 1), "the text jobs decoded before the image jobs came"
    assert widths[image_prefills[-1] + 1] == (4, 1), "and decoded with them right after their prefills"
    assert image_prefills[-1] - image_prefills[0] + 1 == len(image_prefills), "nothing else in between"
    assert engine.image_inputs == {}
