"""The built-in engine with a tiny random image-text-to-text model (LLaVA, saved with its processor): the image
reaches the model's forward as pixel values, the answer is the model's own `generate`'s, and image jobs batch with
text-only jobs whose answers stay what they are alone (float32), held up by no more than an image job's prefill."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from transformers import DynamicCache

from runner.engines.choice import load_engine
from runner.engines.protocol import GenerationRequest, GenerationResult, generate_all
from runner.engines.transformers.engine import TransformersEngine
from runner.engines.transformers.vision import VisionEngine
from runner.errors import ModelLoadError
from runner.images.prepare import prepare_image
from runner.images.seen import SeenImage
from runner.weights.source import ModelFiles
from shared.queues.schemas import Turn
from tests.test_engine import tiny_settings
from tests.tiny_vlm import IMAGE_SIZE, IMAGE_TOKEN, IMAGE_TOKENS

HISTORY: list[Turn] = [{"role": "user", "content": "Hi there"}, {"role": "assistant", "content": "Hello, how are you?"}]


def image(color: tuple[int, int, int], size: tuple[int, int] = (50, 40), name: str = "cat.png") -> SeenImage:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, format="PNG")
    return prepare_image(out.getvalue(), name, max_side=IMAGE_SIZE * 4)


def request(
    job_id: str, message: str, images: Sequence[SeenImage] = (), history: Sequence[Turn] = (), tokens: int = 12
) -> GenerationRequest:
    return GenerationRequest(
        job_id=job_id,
        history=history,
        message=message,
        max_new_tokens=tokens,
        temperature=0.0,
        top_p=1.0,
        repetition_penalty=1.0,
        min_new_tokens=tokens,
        images=tuple(images),
    )


class RecordingVisionEngine(VisionEngine):
    """Records each forward over jobs: the jobs, and how many new positions each row read (1: a decoding step)."""

    forwards: list[tuple[list[str], int]]

    def forward(
        self,
        rows: Sequence[GenerationRequest],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        self.forwards.append(([row.job_id for row in rows], int(input_ids.shape[1])))
        return super().forward(rows, input_ids, attention_mask, position_ids, cache)


@pytest.fixture(scope="module")
def engine(tiny_vlm_dir: Path) -> RecordingVisionEngine:
    settings = tiny_settings(tiny_vlm_dir, batch_size=8)
    loaded = RecordingVisionEngine.load_vision(ModelFiles(str(tiny_vlm_dir), tiny_vlm_dir), settings, sees_images=True)
    loaded.forwards = []
    return loaded


def answers(results: list[GenerationResult]) -> dict[str, str | None]:
    return {result.job_id: result.text for result in results}


def test_an_image_text_to_text_model_is_loaded_as_one_that_sees(tiny_vlm_dir: Path, tiny_model_dir: Path) -> None:
    loaded = load_engine(tiny_settings(tiny_vlm_dir))
    assert isinstance(loaded, VisionEngine) and loaded.sees_images
    assert loaded.max_image_side == IMAGE_SIZE * 4, "sized by its shortest edge: up to 4:1 images keep it"
    assert "images=seen" in loaded.description
    hidden = load_engine(tiny_settings(tiny_vlm_dir, model_sees_images=False))
    assert isinstance(hidden, VisionEngine) and not hidden.sees_images and hidden.max_image_side == 0
    text = load_engine(tiny_settings(tiny_model_dir))
    assert type(text) is TransformersEngine and not text.sees_images
    with pytest.raises(ModelLoadError, match=r"MODEL_SEES_IMAGES=true, but MODEL .* is not an image-text-to-text"):
        load_engine(tiny_settings(tiny_model_dir, model_sees_images=True))


def test_the_image_reaches_the_models_forward_as_pixel_values_and_the_answer_is_generates(
    engine: RecordingVisionEngine,
) -> None:
    red = image((200, 10, 10))
    given: list[Any] = []
    hook = engine.model.register_forward_pre_hook(
        lambda _module, _args, kwargs: given.append(kwargs.get("pixel_values")), with_kwargs=True
    )
    try:
        [result] = generate_all(engine, [request("red", "What is this?", [red])])
    finally:
        hook.remove()
    expected = engine.processor.image_processor(images=[red.image], return_tensors="pt")["pixel_values"]
    assert given[0] is not None and given[0].shape == (1, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert torch.equal(given[0], expected), "the prefill was given the image's pixel values"
    assert all(pixels is None for pixels in given[1:]), "decoding steps read no image"
    image_id = engine.tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    prompt = engine.prompt_ids(request("again", "What is this?", [red]))
    assert prompt.count(image_id) == IMAGE_TOKENS
    engine.image_inputs.pop("again")
    # The model's own generate on the same prompt and image gives the same answer.
    conversation = [
        {"role": "system", "content": [{"type": "text", "text": engine.system_prompt}]},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is this?"}]},
    ]
    text = engine.processor.apply_chat_template(conversation, add_generation_prompt=True, tokenize=False)
    inputs = engine.processor(text=[text], images=[[red.image]], add_special_tokens=False, return_tensors="pt")
    assert inputs["input_ids"][0].tolist() == prompt
    with torch.inference_mode():
        out = engine.model.generate(**inputs, max_new_tokens=12, min_new_tokens=12, do_sample=False)
    assert result.text == engine.tokenizer.decode(out[0, len(prompt) :], skip_special_tokens=True).strip()
    assert result.prompt_tokens == len(prompt)
    assert engine.image_inputs == {}, "an answered job's image tensors are dropped"


def test_image_jobs_batch_with_text_jobs_whose_answers_stay_what_they_are_alone(
    engine: RecordingVisionEngine,
) -> None:
    red, green = image((200, 10, 10)), image((10, 200, 10), (80, 20), "wide.png")
    text_jobs = [request("t1", "Hello there", tokens=20), request("t2", "What is the capital of France?", tokens=20)]
    image_jobs = [
        request("i1", "What is this?", [red]),
        request("i2", "And these two?", [red, green], HISTORY),
        request("i3", "", [green]),
    ]
    alone = {job.job_id: generate_all(engine, [job])[0].text for job in [*text_jobs, *image_jobs]}
    assert len({alone["i1"], alone["i2"], alone["i3"]}) == 3, "different images and words, different answers"
    assert answers(generate_all(engine, [*text_jobs, *image_jobs])) == alone, "all joining in one step"
    # Image jobs arriving while text jobs decode: each is read in one forward, then decodes with them.
    engine.forwards = []
    engine.add(text_jobs)
    results = engine.step() + engine.step() + engine.step()
    engine.add(image_jobs[:1])
    engine.add(image_jobs[1:])
    while engine.unfinished:
        results += engine.step()
    assert answers(results) == alone
    prefills = [(jobs, width) for jobs, width in engine.forwards if width > 1]
    assert [jobs for jobs, _ in prefills] == [["t1", "t2"], ["i1", "i2", "i3"]]
    after = engine.forwards.index((["i1", "i2", "i3"], prefills[1][1]))
    assert engine.forwards[after - 1] == (["t1", "t2"], 1) and engine.forwards[after + 1] == (
        ["t1", "t2", "i1", "i2", "i3"],
        1,
    ), "the text jobs waited for the image jobs' prefill only, then decoded with them"
    assert engine.image_inputs == {}
