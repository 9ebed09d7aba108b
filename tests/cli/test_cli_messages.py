"""What the CLI says: torch-style names and misspelt functions, points that paste back into
--at, and a refused check named by its line in the file."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from servers import ServerThread
from sqlalchemy.orm import Session
from typer.testing import CliRunner

from verifier.api import create_app
from verifier.api.deps import get_session
from verifier.cli import create_cli
from verifier.config import Settings
from verifier.delivery.sender import InMemorySender


def _derivcheck(*arguments: str) -> Any:
    return CliRunner().invoke(create_cli(), list(arguments))


@pytest.fixture
def api_url(settings: Settings, session: Session) -> Iterator[str]:
    app = create_app(settings.model_copy(update={"api_keys": "off"}), InMemorySender())
    app.dependency_overrides[get_session] = lambda: session
    with ServerThread(app) as url:
        yield url


def test_a_torch_style_name_is_answered_with_the_name_to_write() -> None:
    for written, bare in (("torch.special.digamma(x)", "digamma"), ("torch.tanh(x)", "tanh")):
        result = _derivcheck("check", written, "--at", "x=2")
        assert result.exit_code == 2
        # Before: "only named functions may be called at position 0".
        assert f"write {bare}(...), not {written.split('(')[0]}(...)" in result.output


def test_a_misspelt_function_gets_a_suggestion() -> None:
    result = _derivcheck("check", "digama(x)", "--at", "x=2")
    assert result.exit_code == 2
    assert "unknown function 'digama' (did you mean digamma?)" in result.output


def test_a_printed_point_pastes_back_into_at_and_values_show_every_digit() -> None:
    # 1/3 needs 16 digits to come back as the same float64 (Python's repr, the shortest
    # decimal that round-trips); 7 digits gave 0.3333333, another point.
    third = "0.3333333333333333"
    result = _derivcheck("check", "log(1 + x)", "--at", f"x={third}")
    assert result.exit_code == 0, result.output
    assert f"x={third}" in result.output
    assert "0.75" in result.output  # d/dx log(1 + x) = 1/(1 + 1/3) = 3/4 (by hand)
    # d2/dx2 = -1/(1 + x)**2 = -9/16 = -0.5625 at x = 1/3 (by hand); its float64 digits whole.
    assert "-0.5625" in result.output


def test_a_refused_check_is_named_by_its_line_in_the_file(api_url: str, tmp_path: Path) -> None:
    path = tmp_path / "checks.jsonl"
    good = {"expression": "x**2", "points": [{"x": 1}]}
    bad = {"expression": "x**2 + foo(x)", "points": [{"x": 1}]}
    # A blank line: the bad check is the request's check 1 (the API counts from 0) on line 3.
    path.write_text(json.dumps(good) + "\n\n" + json.dumps(bad) + "\n")
    result = _derivcheck("submit", str(path), "--url", api_url)
    assert result.exit_code == 2
    # Before: "HTTP 422: check 1: unknown function 'foo'" while the editor showed line 3.
    assert f"{path}:3: check 1: unknown function 'foo' at position 7" in result.output
