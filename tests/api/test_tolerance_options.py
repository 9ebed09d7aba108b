"""POST /jobs takes a check's tolerance as ``rtol`` (relative) or ``rtol_ulps`` (units in the
last place of the dtype at 1.0), as ``derivcheck check`` and ``check()`` do; the check keeps
the resolved ``rtol``.

Sources of the expected values: [ieee] IEEE 754's machine epsilons, 2**-23 for binary32 and
2**-52 for binary64, so ``rtol_ulps=64`` is ``rtol = 64 * eps``; [options]
``verifier/core/options.py``'s refusals (``relative_tolerance``): both options given, a
negative or non-finite number, as many ulps as a relative tolerance of 1 (2**23 in float32).
"""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from verifier.store import repository

CHECK = {"expression": "sin(x)", "points": [{"x": 1}]}


def _stored_rtols(session: Session, job_id: str) -> list[float | None]:
    job = repository.get_job(session, uuid.UUID(job_id))
    assert job is not None
    return [check.rtol for check in job.checks]


def test_rtol_ulps_is_stored_as_the_relative_tolerance_of_its_dtype(
    client: httpx.Client, session: Session
) -> None:
    checks = [
        {**CHECK, "dtype": "float32", "rtol_ulps": 64},
        {**CHECK, "dtype": "float64", "rtol_ulps": 64},
        {**CHECK, "dtype": "float32", "rtol": 1e-3},
        {**CHECK, "dtype": "float32"},
    ]
    response = client.post("/jobs", json={"checks": checks})
    assert response.status_code == 202, response.text
    # [ieee] 64 ulps: 64 * 2**-23 in float32, 64 * 2**-52 in float64; rtol as given; none given
    # keeps the dtype's default (null, resolved where the check runs).
    assert _stored_rtols(session, response.json()["id"]) == [64 * 2**-23, 64 * 2**-52, 1e-3, None]


def test_rtol_and_rtol_ulps_together_are_a_422_naming_rtol_ulps(client: httpx.Client) -> None:
    both = {**CHECK, "dtype": "float32", "rtol": 1e-5, "rtol_ulps": 64}
    response = client.post("/jobs", json={"checks": [CHECK, both]})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 1, "rtol_ulps"]
    assert problem["msg"].startswith("check 1: give rtol or rtol_ulps, not both")  # [options]


@pytest.mark.parametrize(
    ("value", "words"),
    [
        pytest.param(
            -1, "rtol_ulps must be a non-negative number below 8.38861e+06", id="negative"
        ),
        # [ieee] 2**23 ulps of float32 at 1.0 is a relative tolerance of 1.
        pytest.param(2**23, "rtol_ulps must be a non-negative number below", id="2**23 ulps"),
    ],
)
def test_a_rtol_ulps_out_of_range_is_a_422_saying_what_and_where(
    client: httpx.Client, value: Any, words: str
) -> None:
    response = client.post(
        "/jobs", json={"checks": [{**CHECK, "dtype": "float32", "rtol_ulps": value}]}
    )
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 0, "rtol_ulps"]
    assert problem["msg"].startswith("check 0: ")
    assert words in problem["msg"]  # [options]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param('"64"', id="text"),
        pytest.param("true", id="true"),
        pytest.param("NaN", id="NaN"),
        pytest.param("Infinity", id="Infinity"),
        pytest.param("[64]", id="list"),
    ],
)
def test_a_rtol_ulps_that_is_not_a_finite_number_is_a_422_at_its_field(
    client: httpx.Client, body: str
) -> None:
    check = '{"expression": "x", "points": [{"x": 1}], "rtol_ulps": ' + body + "}"
    raw = '{"checks": [' + check + "]}"
    response = client.post("/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"][-1] == "rtol_ulps"
    assert problem["loc"][:3] == ["body", "checks", 0]
    assert "number" in problem["msg"]


def test_rtol_64_is_refused_with_a_pointer_to_rtol_ulps(client: httpx.Client) -> None:
    # [options] rtol is relative, below 1: 64 is a number of ulps given in the wrong field.
    response = client.post("/jobs", json={"checks": [{**CHECK, "rtol": 64}]})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 0, "rtol"]
    assert "give rtol_ulps" in problem["msg"]
