"""`python bench/image_cost.py`: what an image costs a job in the built-in engine (tokens, prefill time), and what it
costs the text-only jobs decoding beside it.

Two models, both with random weights, built offline: the tiny LLaVA the tests use, and one with SmolVLM-256M's
shapes (Idefics3 classes: a 12-layer SigLIP-sized vision tower at 512 px, 64 tokens per 512-px tile, SmolLM2-135M's
30-layer text model and 49,280-token head). No real small vision model can be downloaded here; a random model with
the real shapes costs the same arithmetic. For each (float32 and DTYPE=auto), best of ROUNDS: the prompt's tokens and
the prefill (time to the first token) of one question alone, with one 800×600 PNG, and, with SmolVLM's image
splitting, with the same image cut into 512-px tiles; then the decoding step of 8 text jobs before and after an image
job joined them. The last line is the summary.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from runner.engines.choice import load_engine  # noqa: E402
from runner.engines.protocol import GenerationRequest, generate_all  # noqa: E402
from runner.engines.transformers.vision import VisionEngine  # noqa: E402
from runner.images.prepare import prepare_image  # noqa: E402
from runner.images.seen import SeenImage  # noqa: E402
from shared.config.settings import Settings  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402
from tests.tiny_vlm import CHAT_TEMPLATE, build_tiny_vlm  # noqa: E402

ROUNDS = 3
TEXT_JOBS = 8
DECODE_STEPS = 8
QUESTION = "What is in this picture? Describe it in one sentence."


def build_smolvlm_shaped(path: Path, text_model_dir: Path, *, splitting: bool) -> Path:
    """A random Idefics3ForConditionalGeneration with SmolVLM-256M-Instruct's shapes, and its processor."""
    from transformers import (
        AutoTokenizer,
        Idefics3Config,
        Idefics3ForConditionalGeneration,
        Idefics3Processor,
        Idefics3VisionConfig,
        LlamaConfig,
    )
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tokenizer = AutoTokenizer.from_pretrained(text_model_dir)
    tiles = [f"<row_{r}_col_{c}>" for r in range(1, 7) for c in range(1, 7)]
    special = ["<fake_token_around_image>", "<image>", "<end_of_utterance>", "<global-img>", *tiles]
    tokenizer.add_special_tokens({"additional_special_tokens": special})
    tokenizer.chat_template = CHAT_TEMPLATE
    text = LlamaConfig(
        vocab_size=49280,  # SmolLM2's head, though the tokenizer uses only its first few hundred ids
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        max_position_embeddings=8192,
        rope_theta=100000.0,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=True,
    )
    vision = Idefics3VisionConfig(
        hidden_size=768,
        intermediate_size=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
        image_size=512,
        patch_size=16,
    )
    config = Idefics3Config(
        vision_config=vision,
        text_config=text,
        image_token_id=tokenizer.convert_tokens_to_ids("<image>"),
        scale_factor=4,
    )
    torch.manual_seed(0)
    model = Idefics3ForConditionalGeneration(config)
    image_processor = Idefics3ImageProcessorPil(
        do_image_splitting=splitting,
        max_image_size={"longest_edge": 512},
        size={"longest_edge": 2048 if splitting else 512},
    )
    processor = Idefics3Processor(
        image_processor=image_processor, tokenizer=tokenizer, image_seq_len=64, chat_template=CHAT_TEMPLATE
    )
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def photo() -> SeenImage:
    """An 800×600 PNG with some detail (a gradient), as people post."""
    image = Image.linear_gradient("L").resize((800, 600)).convert("RGB")
    out = io.BytesIO()
    image.save(out, format="PNG")
    return prepare_image(out.getvalue(), "photo.png", max_side=2048)


def request(job_id: str, images: tuple[SeenImage, ...] = (), tokens: int = 1) -> GenerationRequest:
    return GenerationRequest(job_id, (), QUESTION, tokens, 0.0, 1.0, 1.0, min_new_tokens=tokens, images=images)


def best_prefill(engine: VisionEngine, images: tuple[SeenImage, ...]) -> tuple[int, float]:
    """(prompt tokens, best time to the first token) of the question alone."""
    times, tokens = [], 0
    for index in range(ROUNDS):
        started = time.perf_counter()
        [result] = generate_all(engine, [request(f"p{index}", images)])
        times.append(time.perf_counter() - started)
        tokens = result.prompt_tokens
    return tokens, min(times)


def decode_step_s(engine: VisionEngine, image: SeenImage) -> tuple[float, float]:
    """Median decoding step of TEXT_JOBS text jobs alone, then with an image job that joined them."""
    engine.add([request(f"t{i}", tokens=4 * DECODE_STEPS) for i in range(TEXT_JOBS)])
    engine.step()  # their prefill

    def steps() -> float:
        durations = []
        for _ in range(DECODE_STEPS):
            started = time.perf_counter()
            engine.step()
            durations.append(time.perf_counter() - started)
        return statistics.median(durations)

    alone = steps()
    engine.add([request("img", (image,), tokens=4 * DECODE_STEPS)])
    engine.step()  # its prefill
    together = steps()
    while engine.unfinished:
        engine.step()
    return alone, together


def measure(name: str, model_dir: Path, dtype: str, image: SeenImage) -> dict[str, float]:
    settings = Settings(model=str(model_dir), device="cpu", dtype=dtype, batch_size=16, temperature=0.0)
    engine = load_engine(settings)
    assert isinstance(engine, VisionEngine) and engine.sees_images
    text_tokens, text_s = best_prefill(engine, ())
    image_tokens, image_s = best_prefill(engine, (image,))
    alone, together = decode_step_s(engine, image)
    dtype_shown = str(engine.model.dtype).removeprefix("torch.")
    print(
        f"{name:<22} {dtype_shown:<9} {text_tokens:>6} {text_s * 1000:>9.1f} {image_tokens - text_tokens:>8} "
        f"{image_s * 1000:>10.1f} {alone * 1000:>10.2f} {together * 1000:>12.2f}",
        flush=True,
    )
    return {"image_tokens": image_tokens - text_tokens, "prefill_s": image_s, "text_prefill_s": text_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="the tiny model and one SmolVLM-shaped run only")
    args = parser.parse_args()
    image = photo()
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work)
        text_dir = build_tiny_model(folder / "tiny-text")
        models = [("tiny-llava (tests)", build_tiny_vlm(folder / "tiny-vlm", text_dir), ("float32",))]
        models.append(
            (
                "smolvlm-256m-shaped",
                build_smolvlm_shaped(folder / "smol", text_dir, splitting=False),
                ("float32", "auto"),
            )
        )
        if not args.quick:
            models.append(
                (
                    "  with image splitting",
                    build_smolvlm_shaped(folder / "smol-split", text_dir, splitting=True),
                    ("auto",),
                )
            )
        print(f"threads={torch.get_num_threads()} image=800x600 png, {TEXT_JOBS} text jobs decoding beside it")
        print(
            f"{'model':<22} {'dtype':<9} {'prompt':>6} {'text_ms':>9} {'+tokens':>8} {'image_ms':>10} {'step_ms':>10} "
            f"{'step+img_ms':>12}"
        )
        found = {}
        for name, model_dir, dtypes in models:
            for dtype in dtypes:
                found[(name, dtype)] = measure(name, model_dir, dtype, image)
    smol = found[("smolvlm-256m-shaped", "auto")]
    print(
        f"smolvlm_image_tokens={smol['image_tokens']:.0f} smolvlm_image_prefill_s={smol['prefill_s']:.2f} "
        f"smolvlm_text_prefill_s={smol['text_prefill_s']:.2f}"
    )


if __name__ == "__main__":
    main()
