"""Admission control by cost over HTTP: the largest legal job is refused at submission with its
estimate, the bound and how to split it; ordinary jobs pass (verifier/service/admission.py)."""

from __future__ import annotations

import httpx
import pytest

from verifier.config import Settings
from verifier.core.expression.cost import DEFAULT_MAX_CHECK_COST_UNITS

JOB_BOUND_UNITS = 15_000_000


@pytest.fixture
def api_settings(settings: Settings) -> Settings:
    # As tests/api/conftest.py (keys off, 5 checks per job), with a job bound that 5 checks
    # can pass.
    return settings.model_copy(
        update={
            "max_checks_per_job": 5,
            "max_body_bytes": 4096,
            "api_keys": "off",
            "max_job_cost_units": JOB_BOUND_UNITS,
        }
    )


WIDE = "+".join(f"sin(x{i})" for i in range(32))


def _sampled(expression: str, samples: int, **options: object) -> dict[str, object]:
    return {"expression": expression, "samples": samples, **options}


def test_the_largest_legal_check_is_refused_with_its_estimate_and_a_split(
    client: httpx.Client,
) -> None:
    # Hand count: 32 variables with a Hessian and node gradients (the Add and its 32 sines) give
    # 32 + 1024 + 33 = 1089 entries per point; the tree has 1 + 32*2 = 65 nodes, each weighing
    # SYMBOLIC_WEIGHT = 4 units per derivative. At 10,000 points: 10,000 x 1089 + 65 x 1089 x 4
    # = 11,173,140 units, above 4,000,000; the most points within the bound are
    # (4,000,000 - 283,140) // 1089 = 3413.
    response = client.post("/jobs", json={"checks": [_sampled(WIDE, 10_000, nodes=True)]})
    assert response.status_code == 422
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 0]
    assert problem["type"] == "check_too_costly"
    assert "estimated cost 11,173,140 units" in problem["msg"]
    assert f"limit of {DEFAULT_MAX_CHECK_COST_UNITS:,} units per check" in problem["msg"]
    assert "checks of at most 3413 points" in problem["msg"]
    within = client.post("/jobs", json={"checks": [_sampled(WIDE, 3413, nodes=True)]})
    assert within.status_code == 202, within.text


def test_a_job_of_many_admissible_checks_is_refused_as_a_whole(client: httpx.Client) -> None:
    # Each check: 19 variables with a Hessian, 19 + 361 = 380 entries per point, 39 tree nodes,
    # 10,000 points: 3,800,000 + 39 x 380 x 4 = 3,859,280 units (hand count), within the
    # per-check bound. Four of them are 15,437,120 units, above this module's job bound of
    # 15,000,000: at least 2 jobs; three are within it.
    wide = _sampled("+".join(f"sin(x{i})" for i in range(19)), 10_000)
    response = client.post("/jobs", json={"checks": [wide] * 4})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["type"] == "job_too_costly"
    assert "15,437,120 units" in problem["msg"]
    assert f"{JOB_BOUND_UNITS:,} units per job" in problem["msg"]
    assert "at least 2 jobs" in problem["msg"]
    assert client.post("/jobs", json={"checks": [wide] * 3}).status_code == 202
