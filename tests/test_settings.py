"""Settings: defaults, parsing, one clear error per bad value, and secrets that never show."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from shared.config.declaration import ALL, BOT, COMPOSE, RUNNER, UPDATER
from shared.config.settings import Settings, declared_settings
from shared.errors import SettingsError

TOKEN = "MTIzNDU2Nzg5MDEyMzQ1Njc4.secret-discord-token"


def test_defaults() -> None:
    s = Settings.from_env({}, env_file=None)
    assert s.redis_url.reveal() == "redis://localhost:6379/0"
    assert (s.command_prefix, s.wake_words, s.device, s.dtype, s.model) == ("!", ("llama",), "auto", "auto", "builtin")


def test_declared_defaults_are_what_an_empty_environment_gives() -> None:
    assert Settings() == Settings.from_env({}, env_file=None)
    secrets = {spec.env for spec in declared_settings() if spec.secret}
    assert secrets == {"DISCORD_TOKEN", "HF_TOKEN", "OPENAI_API_KEY", "REDIS_PASSWORD"}


def test_used_by_reads_as_the_readme_writes_it() -> None:
    assert [p.as_text() for p in (ALL, COMPOSE, RUNNER | UPDATER, UPDATER | BOT)] == [
        "all",
        "compose",
        "runner, updater",
        "bot, updater",
    ]


def test_values_are_parsed() -> None:
    s = Settings.from_env(
        {"WAKE_WORDS": "Llama, Bob", "MAX_NEW_TOKENS": "64", "TEMPERATURE": "0", "DEVICE": "cuda:1"}, env_file=None
    )
    assert (s.wake_words, s.max_new_tokens, s.temperature, s.device) == (("llama", "bob"), 64, 0.0, "cuda:1")


def test_env_file_is_read_and_environment_wins(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("MAX_NEW_TOKENS=32\nCOMMAND_PREFIX=?\n")
    s = Settings.from_env({"MAX_NEW_TOKENS": "16"}, env_file=env_file)
    assert (s.max_new_tokens, s.command_prefix) == (16, "?")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "DISCORD_TOKEN is not set"),
        ({"DISCORD_TOKEN": "x", "MAX_NEW_TOKENS": "lots"}, "MAX_NEW_TOKENS is invalid: expected an integer"),
        ({"DISCORD_TOKEN": "x", "TEMPERATURE": "9"}, "TEMPERATURE is invalid: must be between 0 and 5"),
        ({"DISCORD_TOKEN": "x", "DTYPE": "int3"}, "DTYPE is invalid"),
        ({"DISCORD_TOKEN": "x", "DEVICE": "tpu"}, "DEVICE is invalid"),
    ],
)
def test_bad_settings_raise_one_clear_error_naming_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(SettingsError, match=message):
        Settings.from_env(env, env_file=None, require=["DISCORD_TOKEN"])


def test_a_bad_redis_url_error_does_not_show_the_url_or_its_password() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"REDIS_URL": "http://:hunter22@host/0"}, env_file=None)
    assert "REDIS_URL" in str(caught.value) and "hunter22" not in str(caught.value)


def test_repr_hides_every_secret() -> None:
    s = Settings.from_env(
        {
            "DISCORD_TOKEN": TOKEN,
            "HF_TOKEN": "hf_abcdefghijklmnop",
            "OPENAI_API_KEY": "sk-openai-0123456789",
            "REDIS_URL": "redis://:hunter22@redis:6379/0",
        },
        env_file=None,
    )
    shown = repr(s) + str(s.discord_token) + s.redis_url_for_logs + repr(s.hf_token) + repr(s.openai_api_key)
    for secret in (TOKEN, "hf_abcdefghijklmnop", "sk-openai-0123456789", "hunter22"):
        assert secret not in shown
    assert s.discord_token.reveal() == TOKEN
    assert sorted(s.secrets()) == sorted([TOKEN, "hf_abcdefghijklmnop", "sk-openai-0123456789", "hunter22"])


@pytest.mark.parametrize("process", ["bot", "updater"])
def test_process_without_token_exits_with_one_line_naming_it(process: str, tmp_path: Path, project_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", process],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project_root)},
    )
    assert result.returncode == 2
    assert result.stderr.strip() == f"{process}: error: DISCORD_TOKEN is not set; put it in the environment or in .env"


def test_process_with_a_bad_setting_shows_no_traceback_and_no_secret(tmp_path: Path, project_root: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(project_root), "DISCORD_TOKEN": TOKEN, "TOP_P": "2"},
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr and TOKEN not in result.stderr
    assert "TOP_P is invalid" in result.stderr
