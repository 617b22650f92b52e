"""docker-compose.yml, the Dockerfile and cluster.yaml, validated (no Docker engine runs here)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from gateways.settings import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
DOCKERFILE = (ROOT / "Dockerfile").read_text()
_VAR = re.compile(r"\$\{(\w+)(?::([?-])([^}]*))?\}")


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error} interpolation, and $$ escapes."""

    def one(m: re.Match[str]) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg if op == "-" else ""

    return _VAR.sub(one, value).replace("$$", "$")


def service_env(name: str, env: dict[str, str]) -> dict[str, str]:
    return {k: interpolate(str(v), env) for k, v in COMPOSE["services"][name]["environment"].items()}


def test_compose_file_is_valid_against_the_compose_specification() -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    schema = json.loads(schema_file.read_text())
    jsonschema.validate(COMPOSE, schema)


def test_the_service_settings_in_compose_load_and_need_the_secrets() -> None:
    env = service_env("chatservice", {"AUTH_TOKEN": "t0k", "RAY_AUTH_TOKEN": "r4y"})
    settings = Settings.from_env(env)
    assert settings.host == "0.0.0.0" and settings.auth_token == "t0k"
    assert settings.database.kind == "mysql" and settings.database.host == "mysql"
    assert settings.ray_address == "127.0.0.1:6379"
    with pytest.raises(KeyError, match="AUTH_TOKEN"):
        service_env("chatservice", {"RAY_AUTH_TOKEN": "r4y"})
    with pytest.raises(KeyError, match="RAY_AUTH_TOKEN"):
        service_env("ray-worker", {})


def test_compose_sets_only_variables_the_code_reads() -> None:
    known = {v.key for v in ENV_VARS}
    env = COMPOSE["services"]["chatservice"]["environment"]
    unknown = [k for k in env if k not in known and not k.startswith("RAY_")]
    assert unknown == []


def test_published_ports_agree_with_the_settings_and_the_image() -> None:
    env = service_env("chatservice", {"AUTH_TOKEN": "t", "RAY_AUTH_TOKEN": "r"})
    settings = Settings.from_env(env)
    published = {int(p.split(":")[1]) for p in COMPOSE["services"]["chatservice"]["ports"]}
    assert published == {settings.web_port, settings.grpc_port, 8265}
    exposed = {int(p) for p in re.search(r"^EXPOSE (.+)$", DOCKERFILE, re.M).group(1).split()}  # type: ignore[union-attr]
    assert published <= exposed and {6379, 8090} <= exposed
    command = " ".join(COMPOSE["services"]["chatservice"]["command"])
    assert "--port=6379" in command and "--dashboard-host=0.0.0.0" in command


def test_mysql_is_healthchecked_persistent_and_awaited() -> None:
    mysql = COMPOSE["services"]["mysql"]
    assert mysql["image"].startswith("mysql:8")
    assert "healthcheck" in mysql and any(v.startswith("mysql-data:") for v in mysql["volumes"])
    assert COMPOSE["services"]["chatservice"]["depends_on"]["mysql"]["condition"] == "service_healthy"


def test_ray_workers_scale_and_monitoring_is_optional() -> None:
    worker = COMPOSE["services"]["ray-worker"]
    assert "ports" not in worker and "container_name" not in worker  # so --scale works
    assert "chatservice:6379" in " ".join(worker["command"])
    for name in ("prometheus", "grafana"):
        assert COMPOSE["services"][name]["profiles"] == ["monitoring"]
    scrape = yaml.safe_load(COMPOSE["configs"]["prometheus"]["content"])
    assert scrape["scrape_configs"][0]["static_configs"][0]["targets"] == ["chatservice:8090"]


def test_the_image_runs_as_a_non_root_user_from_a_slim_base() -> None:
    stages = re.findall(r"^FROM (\S+)", DOCKERFILE, re.M)
    assert stages and all("slim" in s for s in stages)
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0")
    assert re.search(r"^CMD \[\"chatservice\", \"serve\"\]", DOCKERFILE, re.M)


def test_cluster_yaml_is_valid_for_rays_cluster_launcher() -> None:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config: dict[str, Any] = yaml.safe_load((ROOT / "cluster.yaml").read_text())
    validate_config(prepare_config(config))
    assert config["provider"]["type"] == "local"
    head = " ".join(config["head_start_ray_commands"])
    assert "--dashboard-host=0.0.0.0" in head and "--metrics-export-port" in head
    assert "chatservice serve" in head
    assert any("pip install" in c for c in config["setup_commands"])


def test_compose_gives_running_turns_their_grace_before_docker_kills_the_service() -> None:
    env = service_env("chatservice", {"AUTH_TOKEN": "t", "RAY_AUTH_TOKEN": "r"})
    grace = Settings.from_env(env).shutdown_grace_seconds
    stop = COMPOSE["services"]["chatservice"]["stop_grace_period"]
    assert stop.endswith("s") and grace + 5 <= float(stop[:-1])
    assert "exec chatservice serve" in " ".join(COMPOSE["services"]["chatservice"]["command"])  # gets SIGTERM
