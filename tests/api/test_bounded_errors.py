"""A 422 stays small whatever the request, over real HTTP: at most ``max_validation_problems``
problems, then one that counts the rest, and at most ``max_echoed_input_chars`` of an offending
value echoed back.

docs/hostile-load.md: 400 KB of empty points once drew a 411 MB 422 (one problem per missing
variable of every point: 32 variables x 133,000 points), and a point naming 60,000 unknown
variables a 469 KB one (every name listed in one message).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS

from verifier.api import create_app
from verifier.config import MAX_ECHOED_INPUT_CHARS, MAX_VALIDATION_PROBLEMS, Settings
from verifier.core.expression.syntax import MAX_VARIABLES
from verifier.core.floats.points import MAX_LISTED_NAME_CHARS, MAX_LISTED_NAMES, check_point_names
from verifier.errors import PointError

ATTACK_BODY_BYTES = 400_000
SMALL_ANSWER_BYTES = 64_000


@pytest.fixture
def api(settings: Settings, server_thread: Any, sender: Any) -> Iterator[str]:
    """A live API with the default limits (keys off: this is about the answers)."""
    app = create_app(
        settings.model_copy(update={"api_keys": "off", "rate_limit_per_minute": 0}), sender
    )
    with server_thread(app) as url:
        yield url


def _empty_points_body(size: int) -> bytes:
    """Checks of MAX_VARIABLES variables, each with as many empty points as the default
    limit allows, as many as fit in ``size`` bytes of body."""
    expression = " + ".join(f"x{n}" for n in range(MAX_VARIABLES))
    per_check = Settings.model_fields["max_points_per_check"].default
    points = size // len("{},")  # each empty point is 3 bytes in compact JSON
    while True:
        counts = [min(per_check, points - start) for start in range(0, points, per_check)]
        checks = [{"expression": expression, "points": [{}] * count} for count in counts]
        body = json.dumps({"checks": checks}, separators=(",", ":")).encode()
        if len(body) <= size:
            return body
        points -= 100


def test_400_kb_of_empty_points_draws_a_small_422_that_counts_the_rest(api: str) -> None:
    body = _empty_points_body(ATTACK_BODY_BYTES)
    assert len(body) <= ATTACK_BODY_BYTES
    response = httpx.post(
        f"{api}/jobs",
        content=body,
        headers={"content-type": "application/json"},
        timeout=120 * SLOWNESS,
    )
    assert response.status_code == 422
    assert len(response.content) < SMALL_ANSWER_BYTES  # docs/hostile-load.md: once 411 MB
    problems = response.json()["detail"]
    assert len(problems) == MAX_VALIDATION_PROBLEMS + 1
    listed, summary = problems[:-1], problems[-1]
    assert listed[0]["loc"] == ["body", "checks", 0, "points", 0]
    assert "check 0 point 0" in listed[0]["msg"] and "x0" in listed[0]["msg"]
    # Every empty point is at least one problem (it misses every variable).
    points = sum(len(check["points"]) for check in json.loads(body)["checks"])
    assert points > 130_000  # 400 KB of 3-byte empty points "{}," is about 133,000 of them
    assert summary["type"] == "too_many_problems"
    assert summary["count"] >= points - MAX_VALIDATION_PROBLEMS
    assert f"and {summary['count']} more problems" in summary["msg"]
    assert summary["loc"] == ["body"]


def test_a_long_offending_value_is_echoed_cut_short(api: str) -> None:
    dtype = "f" * 100_000
    response = httpx.post(
        f"{api}/jobs",
        json={"checks": [{"expression": "x", "points": [{"x": 1}], "dtype": dtype}]},
        timeout=30 * SLOWNESS,
    )
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 0, "dtype"]
    echoed = problem["input"]
    # json.dumps of the value: 100,000 characters and two quotes.
    assert echoed == json.dumps(dtype)[:MAX_ECHOED_INPUT_CHARS] + "... (100002 characters in all)"
    assert len(response.content) < 2_000


def test_a_few_problems_are_listed_whole_without_a_count(api: str) -> None:
    response = httpx.post(
        f"{api}/jobs", json={"checks": [{"expression": "x", "points": [{}]}]}, timeout=30 * SLOWNESS
    )
    assert response.status_code == 422
    (problem,) = response.json()["detail"]  # one problem: listed, and no count after it
    assert problem["loc"] == ["body", "checks", 0, "points", 0]
    assert problem["type"] != "too_many_problems"


def test_settings_defaults_are_the_named_limits() -> None:
    fields = Settings.model_fields
    assert fields["max_validation_problems"].default == MAX_VALIDATION_PROBLEMS
    assert fields["max_echoed_input_chars"].default == MAX_ECHOED_INPUT_CHARS


UNKNOWN_NAMES = 60_000
UNKNOWN_NAMES_ANSWER_BYTES = 16_000


def test_a_point_of_60000_unknown_names_draws_a_small_422_that_counts_them(api: str) -> None:
    # docs/hostile-load.md: every unknown name was listed in one message, a 469 KB 422.
    point: dict[str, float] = {"x": 1.0, **{f"n{n}": 1.0 for n in range(UNKNOWN_NAMES)}}
    response = httpx.post(
        f"{api}/jobs",
        json={"checks": [{"expression": "x", "points": [point]}]},
        timeout=60 * SLOWNESS,
    )
    assert response.status_code == 422
    assert len(response.content) < UNKNOWN_NAMES_ANSWER_BYTES
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 0, "points", 0]
    message = problem["msg"]
    assert f"{UNKNOWN_NAMES} unknown variable(s) n0, n1," in message
    listed = MAX_LISTED_NAMES  # the core's bound (verifier/core/floats/points.py)
    assert f"n{listed - 1} and {UNKNOWN_NAMES - listed} more, not listed" in message
    assert f"n{listed}," not in message
    assert "(the expression's variables: x)" in message


def test_a_long_unknown_name_is_listed_cut_short() -> None:
    name = "y" * 100_000
    with pytest.raises(PointError) as refused:
        check_point_names({"x": 1, name: 2}, ("x",), index=3)
    message = str(refused.value)
    assert message.startswith(f"point 3: 1 unknown variable(s) {'y' * MAX_LISTED_NAME_CHARS}...")
    assert len(message) < 200
