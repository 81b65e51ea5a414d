"""A runner and a job's images, against a real redis-server and the fake Discord's CDN: fetched when the job starts
(again when it is retried), the answer carrying a note for each image left out (an expired URL, one that never
answers, an executable, too many), history keeping placeholders; a runner whose model does not see fetches nothing
and names the served models that do."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from PIL import Image
from redis.asyncio import Redis
from transformers import DynamicCache

from runner.engines.echo import EchoEngine
from runner.engines.protocol import GenerationRequest
from runner.engines.transformers.vision import VisionEngine
from runner.weights.source import ModelFiles
from runner.worker import Runner
from shared.config.settings import Settings
from shared.queues.job_queue import ClaimedJob, JobQueue
from shared.queues.notes import with_notes
from shared.queues.schemas import Attachment, Job, Response, decode_response
from shared.storage.keys import Keys
from tests.fake_discord import FakeDiscord
from tests.redis_fixtures import TEST_MODEL, enqueue_opted_in
from tests.test_engine import tiny_settings

MakeJob = Callable[..., Job]
ELF = b"\x7fELF\x02\x01\x01\x00" + bytes(200)


def png(color: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 36), color).save(out, format="PNG")
    return out.getvalue()


async def attachments(fake: FakeDiscord, files: Sequence[tuple[str, bytes]]) -> list[Attachment]:
    """The files put on the fake's CDN (sent in a message), as a job carries them."""
    user = fake.add_user("poster")
    message = await fake.send_message(user, "files", attachments=[(name, "image/png", data) for name, data in files])
    return [
        {"url": a["url"], "filename": a["filename"], "content_type": a["content_type"], "size": a["size"]}
        for a in message["attachments"]
    ]


def attachment_id(image: Attachment) -> str:
    return image["url"].split("/")[-2]


async def final_answers(redis: Redis, keys: Keys, count: int) -> list[Response]:
    found = []
    while len(found) < count:
        popped = await redis.brpop([keys.response], timeout=30)
        assert popped is not None, f"{len(found)} of {count} answers"
        response = decode_response(popped[1])
        if response["kind"] == "answer":
            found.append(response)
    return found


class FailingOnce(VisionEngine):
    """Fails the first prefill that reads an image, as an out-of-memory error would: the job is retried."""

    failed = False

    def forward(
        self,
        rows: Sequence[GenerationRequest],
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: DynamicCache | None,
    ) -> torch.Tensor:
        reads_an_image = cache is not self.batch.cache and any(row.job_id in self.image_inputs for row in rows)
        if reads_an_image and not self.failed:
            type(self).failed = True
            raise RuntimeError("out of memory, once")
        return super().forward(rows, input_ids, attention_mask, position_ids, cache)


async def run_jobs(runner: Runner, rounds: int = 1) -> None:
    runner.generation.start()
    for _ in range(rounds):
        await asyncio.gather(*runner.start_jobs(await runner.claim_batch()))
    await runner.generation.stop()
    await runner.images.close()


async def test_a_runner_that_sees_fetches_each_image_when_it_starts_and_notes_each_one_left_out(
    redis: Redis, queue: JobQueue, make_job: MakeJob, tiny_vlm_dir: Path, fake_discord: FakeDiscord
) -> None:
    keys = Keys()
    settings = tiny_settings(tiny_vlm_dir, model_name=TEST_MODEL, max_images=4)
    engine = FailingOnce.load_vision(ModelFiles(str(tiny_vlm_dir), tiny_vlm_dir), settings, sees_images=True)
    files = [("cat.png", png()), ("old.png", png()), ("stuck.png", png()), ("cat.exe.png", ELF), ("fifth.png", png())]
    images = await attachments(fake_discord, files)
    cat, old, stuck = (attachment_id(image) for image in images[:3])
    fake_discord.expire_attachment(old)
    fake_discord.stall_attachment(stuck)
    job = make_job(content="what are these?", images=images)
    await enqueue_opted_in(redis, keys, queue, [job])
    runner = Runner(settings, engine, redis, "r1")
    runner.images.fetch_timeout_s = 0.5
    await run_jobs(runner, rounds=2)  # the first generation fails; the job is claimed again
    [answer] = await final_answers(redis, keys, 1)
    assert answer["content"] and answer.get("notes") == [
        "I look at 4 images of a message at most, so I left out `fifth.png`.",
        "I couldn't see `old.png`: its link has expired or the file is gone (HTTP 404), so I answered without it.",
        "I couldn't see `stuck.png`: it did not download within 0.5 s, so I answered without it.",
        "I couldn't see `cat.exe.png`: it isn't a PNG, JPEG, WebP or GIF image, so I answered without it.",
    ]
    fetched = [(fetch.attachment_id, fetch.status) for fetch in fake_discord.cdn_fetches]
    assert fetched.count((cat, 200)) == 2, "the retried job fetched its images again"
    assert (old, 404) in fetched and (stuck, 0) in fetched
    assert "fifth.png" not in {fetch.filename for fetch in fake_discord.cdn_fetches}
    [stored] = [json.loads(raw) for raw in [await redis.get(keys.history(job["conversation"]))]]
    assert stored[0] == {
        "role": "user",
        "content": "what are these?\n[image: cat.png] [image: old.png] [image: stuck.png] [image: cat.exe.png] "
        "[image: fifth.png]",
    }
    assert runner.heartbeat_details()["sees_images"] is True


async def test_a_runner_whose_model_does_not_see_fetches_nothing_and_names_the_models_that_do(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob, fake_discord: FakeDiscord
) -> None:
    # A live runner of another model that sees, as its heartbeat says.
    await redis.set(keys.heartbeat("runner", "seer-1"), json.dumps({"model": "seer", "sees_images": True}), ex=30)
    await redis.sadd(keys.workers("runner"), "seer-1")
    images = await attachments(fake_discord, [("cat.png", png())])
    await enqueue_opted_in(redis, keys, queue, [make_job(content="what is it?", images=images)])
    runner = Runner(Settings(model_name=TEST_MODEL, stream_interval_s=0), EchoEngine(), redis, "r1")
    await run_jobs(runner)
    [answer] = await final_answers(redis, keys, 1)
    assert answer["content"] == "echo: what is it?\n[image: cat.png]", "the model reads a placeholder"
    assert answer.get("notes") == [
        f"`{TEST_MODEL}` can't see images, so I answered from the words alone, without the image. "
        "`!model seer` picks a model that can."
    ]
    assert fake_discord.cdn_fetches == []
    assert runner.heartbeat_details()["sees_images"] is False


async def test_partial_texts_show_the_notes_above_them_as_the_final_text_will(
    redis: Redis, keys: Keys, queue: JobQueue, make_job: MakeJob, fake_discord: FakeDiscord
) -> None:
    images = await attachments(fake_discord, [("cat.png", png())])
    await enqueue_opted_in(redis, keys, queue, [make_job(content="a slow answer with many words", images=images)])
    runner = Runner(Settings(model_name=TEST_MODEL, stream_interval_s=0.01), EchoEngine(delay_s=0.5), redis, "r1")
    streamed: list[str] = []
    stream = runner.queue.stream

    async def recording(worker_id: str, partials: list[tuple[ClaimedJob, str]], ttl_s: float) -> list[bool]:
        streamed.extend(text for _, text in partials)
        return await stream(worker_id, partials, ttl_s)

    runner.queue.stream = recording  # type: ignore[method-assign]
    await run_jobs(runner)
    [answer] = await final_answers(redis, keys, 1)
    header = "".join(f"-# {note}\n" for note in answer.get("notes", []))
    assert header and streamed and all(text.startswith(header) for text in streamed)
    assert with_notes(answer["content"], answer.get("notes", [])).startswith(streamed[0]), "the same first lines"
