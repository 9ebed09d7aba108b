"""docker-compose.yml and the Dockerfile, checked without a Docker engine: every command is a
real entry point of ours, every variable one that Settings knows, every file the build copies
exists, and the services, broker and GPU settings that README's service section lists are there."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from verifier.config import Settings

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_FILE = ROOT / "docker-compose.yml"
# README, "The service": redis, postgres, a one-shot migration, the API, a CPU and a GPU worker.
EXPECTED_SERVICES = {"redis", "postgres", "migrate", "api", "worker-cpu", "worker-gpu"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(COMPOSE_FILE.read_text())
    return document


def _our_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: spec for name, spec in compose["services"].items() if "build" in spec}


def _is_group(command: Any) -> bool:
    return hasattr(command, "commands")  # typer's groups are its own click classes


def _cli() -> Any:
    from verifier import cli

    app = cli.create_cli() if hasattr(cli, "create_cli") else typer.Typer()
    group = typer.main.get_command(app)
    assert _is_group(group)
    return group


def _resolve(group: Any, arguments: list[str]) -> None:
    """Parse ``arguments`` as ``derivcheck`` would, without running the command."""
    command, rest, name = group, list(arguments), "derivcheck"
    while _is_group(command):
        assert rest, f"{name} needs a subcommand"
        name, rest = rest[0], rest[1:]
        command = command.commands.get(name)
        assert command is not None, f"no command {name!r}"
    command.make_context(name, rest)  # raises on an unknown option or a bad value


def test_compose_has_the_services_the_readme_lists(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) >= EXPECTED_SERVICES


def test_redis_keeps_messages(compose: dict[str, Any]) -> None:
    command = " ".join(compose["services"]["redis"]["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command


def test_gpu_worker_is_a_profile_with_an_nvidia_reservation(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["worker-gpu"]
    assert gpu["profiles"] == ["gpu"]
    (device,) = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert device["driver"] == "nvidia"
    assert "gpu" in device["capabilities"]
    assert "gpu" in gpu["command"][gpu["command"].index("--queues") + 1].split(",")


def test_migrate_runs_once_before_api_and_workers(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["command"] == ["derivcheck", "db", "upgrade"]
    for name in ("api", "worker-cpu", "worker-gpu"):
        condition = services[name]["depends_on"]["migrate"]["condition"]
        assert condition == "service_completed_successfully"


def test_the_derivcheck_script_is_our_cli_entry_point() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["derivcheck"] == "verifier.cli:main"


def test_every_command_is_a_real_derivcheck_command(compose: dict[str, Any]) -> None:
    group = _cli()
    missing = {"serve", "worker", "db"} - set(group.commands)
    assert not missing, (
        f"`derivcheck` lacks {sorted(missing)}: verifier.cli.create_cli() must register them"
    )
    for name, spec in _our_services(compose).items():
        command = spec["command"]
        assert command[0] == "derivcheck", name
        _resolve(group, command[1:])


def test_every_environment_variable_is_a_setting(compose: dict[str, Any]) -> None:
    known = set(Settings.model_fields)
    for name, spec in _our_services(compose).items():
        for variable in spec.get("environment", {}):
            assert variable.startswith("VERIFIER_"), (name, variable)
            assert variable.removeprefix("VERIFIER_").lower() in known, (name, variable)
    dockerfile = (ROOT / "Dockerfile").read_text()
    for variable in re.findall(r"\b(VERIFIER_[A-Z_]+)=", dockerfile):
        assert variable.removeprefix("VERIFIER_").lower() in known, variable


def test_images_build_from_files_that_exist(compose: dict[str, Any]) -> None:
    for name, spec in _our_services(compose).items():
        build = spec["build"]
        context = ROOT / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert dockerfile.is_file(), (name, dockerfile)
        for line in dockerfile.read_text().splitlines():
            if line.startswith(("COPY ", "ADD ")):
                *sources, _target = shlex.split(line)[1:]
                for source in sources:
                    if not source.startswith("--"):
                        assert (context / source).exists(), (name, f"COPY source {source}")
