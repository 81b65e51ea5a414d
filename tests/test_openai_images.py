"""A runner in front of an OpenAI-compatible server shows a model that sees (MODEL_SEES_IMAGES=true) the images as
`image_url` parts with `data:` URLs: the stand-in records the request, and `transformers serve` on the tiny model
that sees answers it as it answers a plain client sending the same image."""

from __future__ import annotations

import asyncio
import base64
import io
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import openai
import pytest
from PIL import Image

from runner.engines.choice import load_engine
from runner.engines.openai.engine import OpenAIEngine
from runner.engines.protocol import GenerationRequest, generate_all
from runner.images.prepare import prepare_image
from runner.images.seen import SeenImage
from shared.config.secret import Secret
from shared.config.settings import Settings
from tests.openai_server import ServedModel, start_transformers_serve
from tests.openai_stand_in import OpenAIStandIn
from tests.tiny_vlm import IMAGE_TOKENS


def image(color: tuple[int, int, int], name: str) -> SeenImage:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, format="PNG")
    return prepare_image(out.getvalue(), name, max_side=2048)


def request(job_id: str, message: str, images: tuple[SeenImage, ...]) -> GenerationRequest:
    return GenerationRequest(job_id, (), message, 8, 0.0, 1.0, 1.0, images=images)


@pytest.fixture
async def stand_in() -> AsyncIterator[OpenAIStandIn]:
    server = OpenAIStandIn()
    await server.start()
    yield server
    await server.stop()


async def test_images_go_as_image_url_parts_with_data_urls_only_when_the_model_sees(stand_in: OpenAIStandIn) -> None:
    settings = Settings(model=f"openai:{stand_in.model}", openai_base_url=stand_in.base_url, model_sees_images=True)
    engine = load_engine(settings)
    assert isinstance(engine, OpenAIEngine) and engine.sees_images and engine.max_image_side == 2048
    red, blue = image((255, 0, 0), "red.png"), image((0, 0, 255), "blue.png")
    try:
        [result] = await asyncio.to_thread(generate_all, engine, [request("j1", "What are these?", (red, blue))])
    finally:
        await asyncio.to_thread(engine.close)
    assert result.text == "answer to: What are these?"
    [body] = stand_in.bodies
    parts = body["messages"][-1]["content"]
    assert [part["type"] for part in parts] == ["image_url", "image_url", "text"]
    assert parts[2]["text"] == "What are these?"
    for part, seen in zip(parts, (red, blue), strict=False):
        url = part["image_url"]["url"]
        assert url.startswith("data:image/png;base64,") and base64.b64decode(url.split(",", 1)[1]) == seen.data
    assert body["messages"][0]["role"] == "system" and isinstance(body["messages"][0]["content"], str)
    unseeing = load_engine(Settings(model=f"openai:{stand_in.model}", openai_base_url=stand_in.base_url))
    assert not unseeing.sees_images and unseeing.max_image_side == 0, "openai: models see nothing unless told"
    await asyncio.to_thread(unseeing.close)


@pytest.fixture(scope="module")
def vlm_server(tiny_vlm_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedModel]:
    served = start_transformers_serve(tiny_vlm_dir, tmp_path_factory.mktemp("vlm-server"))
    yield served
    served.stop()


def test_transformers_serve_sees_the_image_the_runner_sends(vlm_server: ServedModel) -> None:
    engine = OpenAIEngine(vlm_server.model, vlm_server.base_url, Secret(""), "", 1, sees_images=True)
    red = image((255, 0, 0), "red.png")
    try:
        with_image, words_only = generate_all(
            engine, [request("seen", "What is this?", (red,)), request("words", "What is this?", ())]
        )
    finally:
        engine.close()
    client = openai.OpenAI(base_url=vlm_server.base_url, api_key="EMPTY", max_retries=0)
    try:
        direct = client.chat.completions.create(
            model=vlm_server.model,
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image_url", "image_url": {"url": red.data_url}},
                        {"type": "text", "text": "What is this?"},
                    ],
                }
            ],
            max_tokens=8,
            temperature=0.0,
        )
    finally:
        client.close()
    assert with_image.error is None and with_image.text == direct.choices[0].message.content
    assert direct.usage is not None and with_image.prompt_tokens == direct.usage.prompt_tokens
    assert with_image.prompt_tokens == words_only.prompt_tokens + IMAGE_TOKENS, "the image's tokens reached the model"
