"""`python -m tests.recording_runner`: the real runner, whose transformers engine also appends every prompt it
builds (decoded, as the model reads it) to the file RECORD_PROMPTS_TO, so tests assert exactly what it was given."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from runner.__main__ import main
from runner.engines.protocol import GenerationRequest
from runner.engines.transformers.engine import TransformersEngine
from shared.runtime.process import run_process

_build = TransformersEngine.prompt_ids


def _recording_prompt_ids(self: TransformersEngine, request: GenerationRequest) -> list[int]:
    ids = _build(self, request)
    record = {"job_id": request.job_id, "prompt": self.tokenizer.decode(ids)}
    with Path(os.environ["RECORD_PROMPTS_TO"]).open("a", encoding="utf-8") as out:
        out.write(json.dumps(record) + "\n")
    return ids


def recorded_prompts(path: Path) -> dict[str, str]:
    """Job id -> the prompt its (last) generation was given."""
    if not path.exists():
        return {}
    lines = path.read_text(encoding="utf-8").splitlines()
    return {record["job_id"]: record["prompt"] for record in map(json.loads, lines)}


if __name__ == "__main__":
    TransformersEngine.prompt_ids = _recording_prompt_ids  # type: ignore[method-assign]
    sys.exit(run_process("runner", main))
