"""Finds the files that MODEL names: the built-in model, a local folder or .gguf file, or a model on the Hub."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from runner.errors import ModelLoadError
from runner.weights.builtin import BUILTIN_DESCRIPTION, prepare_builtin_model
from shared.config.settings import BUILTIN_MODEL, ECHO_MODEL, Settings

log = logging.getLogger(__name__)

HUB_CACHE_SUBDIR = "hub"
"""Folder under MODEL_CACHE_DIR where Hub downloads are cached (huggingface_hub's own layout)."""

_HUB_ID_RE = re.compile(r"[A-Za-z0-9][\w.-]{0,95}/[\w.-]{1,96}")
# What from_pretrained reads from a Hub repo: configs, tokenizer files, chat template, safetensors weights.
# Repos often carry the same weights again as .bin/.pth/ONNX/GGUF, or in a consolidated "original" format.
_HUB_PATTERNS = ["*.json", "*.jinja", "*.model", "*.tiktoken", "*.txt", "model*.safetensors"]
_HUB_PATTERNS_WITHOUT_SAFETENSORS = ["pytorch_model*.bin"]
_TRUE = {"1", "on", "yes", "true"}


@dataclass(frozen=True)
class ModelFiles:
    """Where from_pretrained finds a model: a folder, and the .gguf file in it when the weights are GGUF."""

    name: str
    directory: Path
    gguf_file: str | None = None


def parse_echo_model(model: str) -> float | None:
    """The per-call delay in seconds for MODEL=echo or MODEL=echo:SECONDS; None for any other model."""
    name, _, delay = model.strip().partition(":")
    if name.lower() != ECHO_MODEL:
        return None
    if not delay:
        return 0.0
    try:
        seconds = float(delay)
    except ValueError:
        seconds = -1.0
    if not 0.0 <= seconds <= 3600.0:
        raise ModelLoadError(f"MODEL {model!r}: expected echo or echo:SECONDS with SECONDS between 0 and 3600")
    return seconds


def resolve_model(settings: Settings) -> ModelFiles:
    """The local files of settings.model, fetching a Hub model (or converting the built-in one) first."""
    model = settings.model.strip()
    if model.lower() == BUILTIN_MODEL:
        return ModelFiles(BUILTIN_DESCRIPTION, prepare_builtin_model(settings))
    path = Path(model).expanduser()
    if path.is_dir():
        return ModelFiles(model, path)
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"MODEL {model!r}: no such .gguf file")
        return ModelFiles(model, path.parent, path.name)
    if path.exists():
        raise ModelLoadError(f"MODEL {model!r} is a file but not a .gguf one: point MODEL at the model's folder")
    if _HUB_ID_RE.fullmatch(model) and ".." not in model and "--" not in model:
        return ModelFiles(model, download_from_hub(model, settings))
    raise ModelLoadError(
        f"MODEL {model!r} is neither an existing folder or .gguf file nor a Hub id such as "
        f"HuggingFaceTB/SmolLM2-360M-Instruct; leave it unset for the built-in model"
    )


def download_from_hub(repo_id: str, settings: Settings) -> Path:
    """Fetches (or finds in the cache) the files from_pretrained needs; Hub errors become one-line ModelLoadErrors.

    The token is only ever handed to huggingface_hub: no message built here contains it or a Hub error's text.
    """
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        GatedRepoError,
        HfHubHTTPError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
    )

    token = settings.hf_token.reveal() or None
    cache_dir = settings.model_cache_dir / HUB_CACHE_SUBDIR
    # huggingface_hub reads HF_HUB_OFFLINE once at import; read it again so a later setting is honoured.
    offline = _offline_mode()

    def fetch(patterns: list[str]) -> Path:
        folder = snapshot_download(
            repo_id, token=token, cache_dir=cache_dir, allow_patterns=patterns, local_files_only=offline
        )
        return Path(folder)

    try:
        folder = fetch(_HUB_PATTERNS)
        if not any(folder.glob("*.safetensors")):
            folder = fetch(_HUB_PATTERNS + _HUB_PATTERNS_WITHOUT_SAFETENSORS)
    except GatedRepoError:
        action = "HF_TOKEN's account has no access yet" if token else "set HF_TOKEN"
        raise ModelLoadError(f"MODEL {repo_id} is gated: accept its licence on the Hub ({action})") from None
    except RepositoryNotFoundError:
        hint = "check the name and that HF_TOKEN may read it" if token else "check the name; private ones need HF_TOKEN"
        raise ModelLoadError(f"MODEL {repo_id} was not found on the Hub ({hint})") from None
    except HfHubHTTPError as exc:
        status = exc.response.status_code if exc.response is not None else "error"
        if status == 401:
            reason = "the Hub refused HF_TOKEN (401): check the token"
        else:
            reason = f"the Hub answered HTTP {status}; try again later"
        raise ModelLoadError(f"MODEL {repo_id} could not be fetched: {reason}") from None
    except LocalEntryNotFoundError:
        reason = "HF_HUB_OFFLINE is set" if offline else "the Hub cannot be reached"
        raise ModelLoadError(
            f"MODEL {repo_id} is not (completely) in the model cache {cache_dir} and {reason}: "
            f"fetch it once with network access"
        ) from None
    except OSError as exc:
        raise ModelLoadError(
            f"MODEL {repo_id} could not be stored in MODEL_CACHE_DIR {settings.model_cache_dir}: "
            f"{exc.strerror or type(exc).__name__}"
        ) from None
    log.info("model %s is in %s", repo_id, folder)
    return folder


def _offline_mode() -> bool:
    from huggingface_hub import constants

    variables = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    return constants.HF_HUB_OFFLINE or any(os.environ.get(name, "").strip().lower() in _TRUE for name in variables)
