"""The service commands' input handling: check files, Feynman tables, and one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from verifier.cli import create_cli
from verifier.cli.client import CliError
from verifier.cli.inputs import read_checks
from verifier.service.suite import demo_suite

FEYNMAN_TABLE = (
    Path(__file__).resolve().parents[3] / "shared" / "corpora" / "feynman" / "FeynmanEquations.csv"
)
FEYNMAN_EQUATIONS = 100  # rows with a formula in the AI Feynman table (Udrescu & Tegmark 2020)


@pytest.fixture
def app() -> typer.Typer:
    return create_cli()


def _assert_one_line_error(result: object, *words: str) -> None:
    assert result.exit_code == 2  # type: ignore[attr-defined]
    stderr: str = result.stderr  # type: ignore[attr-defined]
    assert "Traceback" not in stderr and "Traceback" not in result.stdout  # type: ignore[attr-defined]
    assert stderr.startswith("error:")
    for word in words:
        assert word in " ".join(stderr.split())


def test_json_lines_become_checks(tmp_path: Path) -> None:
    path = tmp_path / "checks.jsonl"
    path.write_text('{"expression": "x**2", "points": [{"x": 2}]}\n\n{"expression": "sin(y)"}\n')
    checks = read_checks(path, file_format="auto", samples=10, dtype="float32", seed=0)
    assert [check["expression"] for check in checks] == ["x**2", "sin(y)"]
    assert {check["dtype"] for check in checks} == {"float32"}


def test_bad_json_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "checks.jsonl"
    path.write_text('{"expression": "x"}\n{"expression": \n')
    with pytest.raises(CliError, match=r"checks.jsonl:2: not valid JSON"):
        read_checks(path, file_format="auto", samples=10, dtype=None, seed=0)


@pytest.mark.skipif(not FEYNMAN_TABLE.is_file(), reason="the AI Feynman table is not here")
def test_feynman_table_becomes_sampled_checks_over_its_ranges() -> None:
    checks = read_checks(FEYNMAN_TABLE, file_format="auto", samples=7, dtype=None, seed=3)
    assert len(checks) == FEYNMAN_EQUATIONS
    first = checks[0]
    # Row I.6.2a of the table: exp(-theta**2/2)/sqrt(2*pi), theta in [1, 3].
    assert first["expression"] == "exp(-theta**2/2)/sqrt(2*pi)"
    assert first["domain"] == {"theta": [1.0, 3.0]}
    assert first["samples"] == 7 and first["seed"] == 3


def test_submit_of_a_missing_file_is_one_line(app: typer.Typer, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["submit", str(tmp_path / "nope.jsonl")])
    _assert_one_line_error(result, "cannot read", "nope.jsonl")


def test_submit_to_an_unreachable_api_is_one_line(app: typer.Typer, tmp_path: Path) -> None:
    path = tmp_path / "checks.jsonl"
    path.write_text(json.dumps({"expression": "x", "points": [{"x": 1}]}) + "\n")
    result = CliRunner().invoke(app, ["submit", str(path), "--url", "http://127.0.0.1:1"])
    _assert_one_line_error(result, "cannot reach the API at http://127.0.0.1:1")


def test_bad_configuration_is_one_line(app: typer.Typer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERIFIER_MAX_CHECKS_PER_JOB", "many")
    result = CliRunner().invoke(app, ["status", "some-job"])
    _assert_one_line_error(result, "VERIFIER_MAX_CHECKS_PER_JOB")


def test_demo_suite_holds_the_seed_examples_and_a_few_dozen_more() -> None:
    expressions = [check["expression"] for check in demo_suite()]
    assert expressions[:4] == ["x**2 + 2*x", "3*x**2 + 2*x*y + y**2", "3*x**2", "(1 - cos(x))/x**2"]
    assert len(expressions) >= 30
