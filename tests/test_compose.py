"""docker-compose.yml and the Dockerfile, checked without a Docker engine: every command is a
real entry point of ours, every variable one that Settings knows, every file the build copies
exists, and the services, broker and GPU settings that README's service section lists are there."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import threading
import tomllib
from pathlib import Path
from typing import Any

import pytest
import typer
import yaml
from slowness import SLOWNESS

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


def test_flower_listens_on_loopback_only(compose: dict[str, Any]) -> None:
    # Before: "5555:5555", every interface of the host.
    for port in compose["services"]["flower"]["ports"]:
        assert str(port).startswith("127.0.0.1:"), port


def test_flower_has_no_default_credentials(compose: dict[str, Any]) -> None:
    # Before: ${FLOWER_BASIC_AUTH:-admin:change-me}. Not ${FLOWER_BASIC_AUTH:?...}: compose
    # interpolates every service before it applies profiles, so a plain `docker compose up`
    # would then fail without Flower's credentials.
    value = compose["services"]["flower"]["environment"]["FLOWER_BASIC_AUTH"]
    assert value == "${FLOWER_BASIC_AUTH:-}"


def _flower_script(compose: dict[str, Any]) -> list[str]:
    """Flower's command as the container runs it (compose turns ``$$`` into ``$``)."""
    return [part.replace("$$", "$") for part in compose["services"]["flower"]["command"]]


@pytest.mark.parametrize(("credentials", "starts"), [("", False), ("ops:s3cret", True)])
def test_flower_starts_only_with_credentials_from_the_environment(
    compose: dict[str, Any], tmp_path: Path, credentials: str, starts: bool
) -> None:
    command = _flower_script(compose)
    assert command[:2] == ["sh", "-c"]
    # A stand-in for celery that says it was started and with which arguments.
    fake = tmp_path / "celery"
    fake.write_text('#!/bin/sh\necho "celery $*"\n')
    fake.chmod(0o755)
    ran = subprocess.run(
        command,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin", "FLOWER_BASIC_AUTH": credentials},
        capture_output=True,
        text=True,
        timeout=10 * SLOWNESS,
    )
    if starts:
        assert ran.returncode == 0, ran.stderr
        assert ran.stdout.startswith("celery --app workers.app:app flower")
    else:
        assert ran.returncode != 0
        assert "FLOWER_BASIC_AUTH" in ran.stderr
        assert "celery" not in ran.stdout


def test_the_api_has_a_healthcheck_on_health(compose: dict[str, Any]) -> None:
    # Before: none, so `docker compose ps` said "running" for an API that answered 503.
    check = compose["services"]["api"]["healthcheck"]
    test = check["test"]
    assert test[0] == "CMD"
    assert "http://127.0.0.1:8000/health" in " ".join(test)
    command = compose["services"]["api"]["command"]
    assert f":{command[command.index('--port') + 1]}/health" in " ".join(test)


def test_the_api_healthcheck_fails_on_an_api_that_is_not_healthy(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """The healthcheck's own command, run here against a server that answers 503 and one
    that answers 200, exits non-zero and zero (urllib raises on a 503)."""
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    test = compose["services"]["api"]["healthcheck"]["test"]
    code = test[test.index("-c") + 1]
    results = {}
    for status in (503, 200):

        class Answer(BaseHTTPRequestHandler):
            answer = status

            def do_GET(self) -> None:  # the handler's name is http.server's
                self.send_response(self.answer)
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", 0), Answer)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            ran = subprocess.run(
                [sys.executable, "-c", code.replace("8000", str(server.server_address[1]))],
                capture_output=True,
                timeout=30 * SLOWNESS,
            )
        finally:
            server.shutdown()
            server.server_close()
        results[status] = ran.returncode
    assert results[200] == 0
    assert results[503] != 0


def test_readme_says_how_to_create_the_first_key_in_compose(compose: dict[str, Any]) -> None:
    readme = (ROOT / "README.md").read_text()
    command = "docker compose run --rm api derivcheck keys create"
    assert command in readme
    _resolve(_cli(), ["keys", "create", "operator"])
