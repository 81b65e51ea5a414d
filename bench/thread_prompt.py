"""`python bench/thread_prompt.py`: how long a full shared thread's prompt is with the defaults, and what it costs
one answer with the built-in model.

A thread keeps THREAD_MAX_TURNS messages (40: 20 questions from bench/questions.json by four speakers, each with
the built-in model's own greedy answer of up to MAX_NEW_TOKENS=256 tokens). A new question is then answered (64
new tokens, greedy) with that history and, for comparison, with none (a first message); the prompt is built as
the runner builds it (named speakers, group line, trimmed to the context). Prints the prompt lengths and, best of
ROUNDS, the time to the first token (reading the prompt) and to the whole answer. The last line is the summary.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import QUESTIONS, bench_settings  # noqa: E402
from runner.conversation import model_view  # noqa: E402
from runner.engines.choice import load_engine  # noqa: E402
from runner.engines.protocol import GenerationRequest, generate_all  # noqa: E402
from runner.engines.transformers.engine import TransformersEngine  # noqa: E402
from shared.config.settings import Settings  # noqa: E402
from shared.queues.conversation_ids import shared_conversation  # noqa: E402
from shared.queues.job_queue import exchange  # noqa: E402
from shared.queues.jobs import new_job  # noqa: E402
from shared.queues.schemas import Job, Turn  # noqa: E402

SPEAKERS = ("alice", "bob", "carol", "dave")
NEW_TOKENS = 64
ROUNDS = 3


def job(index: int, content: str) -> Job:
    conversation = shared_conversation("1")
    user = str(index % len(SPEAKERS))
    item = new_job(f"t{index}", user, "1", content, guild_id="2", conversation=conversation, lane=conversation)
    item["author_name"] = SPEAKERS[index % len(SPEAKERS)]
    return item


def request(settings: Settings, item: Job, history: list[Turn], new_tokens: int, minimum: int) -> GenerationRequest:
    system_prompt, turns, message = model_view(item, history, settings.system_prompt)
    return GenerationRequest(
        job_id=item["id"],
        history=turns,
        message=message,
        max_new_tokens=new_tokens,
        temperature=0.0,
        top_p=settings.top_p,
        repetition_penalty=settings.repetition_penalty,
        min_new_tokens=minimum,
        system_prompt=system_prompt,
    )


def full_thread(engine: TransformersEngine, settings: Settings) -> list[Turn]:
    """THREAD_MAX_TURNS turns: each question answered by the model, as in a thread that kept them all."""
    questions = [job(i, QUESTIONS[i % len(QUESTIONS)]) for i in range(settings.thread_max_turns // 2)]
    answers = generate_all(engine, [request(settings, q, [], settings.max_new_tokens, 0) for q in questions])
    history: list[Turn] = []
    for question, answer in zip(questions, answers, strict=True):
        history += exchange(question, question["content"], answer.text or "")
    return history


def timed_answer(engine: TransformersEngine, answer_request: GenerationRequest) -> tuple[float, float]:
    """(seconds to the first token, seconds to the whole answer) for one request alone."""
    started = time.perf_counter()
    engine.add([answer_request])
    first = None
    while engine.unfinished:
        engine.step()
        first = first or time.perf_counter() - started
    return first or 0.0, time.perf_counter() - started


def main() -> None:
    settings = dataclasses.replace(bench_settings(), max_new_tokens=Settings().max_new_tokens)
    engine = load_engine(settings)
    assert isinstance(engine, TransformersEngine)
    print(
        f"{engine.description}; THREAD_MAX_TURNS={settings.thread_max_turns}, answers up to "
        f"{settings.max_new_tokens} tokens"
    )
    history = full_thread(engine, settings)
    asked = job(99, "So, what should we all do this weekend?")
    with_thread = request(settings, asked, history, NEW_TOKENS, NEW_TOKENS)
    first_message = request(settings, asked, [], NEW_TOKENS, NEW_TOKENS)
    thread_tokens, fresh_tokens = len(engine.prompt_ids(with_thread)), len(engine.prompt_ids(first_message))
    print(f"full thread: {len(history)} turns, prompt {thread_tokens} tokens; a first message: {fresh_tokens}")
    times: dict[str, list[tuple[float, float]]] = {"thread": [], "first": []}
    for _ in range(ROUNDS):
        times["thread"].append(timed_answer(engine, with_thread))
        times["first"].append(timed_answer(engine, first_message))
    (thread_first, thread_total), (fresh_first, fresh_total) = min(times["thread"]), min(times["first"])
    print(f"first token: {thread_first:.2f} s with the full thread, {fresh_first:.2f} s for a first message")
    print(f"{NEW_TOKENS}-token answer: {thread_total:.2f} s with the full thread, {fresh_total:.2f} s for a first one")
    print(
        f"thread_turns={len(history)} prompt_tokens={thread_tokens} first_message_prompt_tokens={fresh_tokens} "
        f"first_token_s={thread_first:.2f} first_token_s_first_message={fresh_first:.2f} "
        f"answer_s={thread_total:.2f} answer_s_first_message={fresh_total:.2f}"
    )


if __name__ == "__main__":
    main()
