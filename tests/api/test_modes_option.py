"""POST /jobs takes a check's derivative paths as ``modes`` ("all", names separated by commas,
or a list), as ``derivcheck check --modes`` and ``check(modes=...)`` do; the check stores the
names it resolved, and an unknown name is a 422 at the field.

Sources of the expected values: [modes] the table of ``verifier/core/program/modes.py``, its
default (reverse and reverse-over-reverse) and what "all" names (every mode, in table order).
"""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy.orm import Session

from verifier.core.program.modes import DEFAULT_MODES, MODES
from verifier.store import repository

CHECK = {"expression": "sin(x)", "points": [{"x": 1}]}


def test_modes_are_stored_by_name_as_resolved(client: httpx.Client, session: Session) -> None:
    checks = [
        {**CHECK, "modes": "all"},
        {**CHECK, "modes": ["func:forward", "func:forward"]},
        CHECK,
    ]
    response = client.post("/jobs", json={"checks": checks})
    assert response.status_code == 202, response.text
    job = repository.get_job(session, uuid.UUID(response.json()["id"]))
    assert job is not None
    stored = [check.modes for check in job.checks]
    # [modes] "all" is every mode; a repeated name counts once; none given is the default.
    assert stored == [list(MODES), ["func:forward"], list(DEFAULT_MODES)]


def test_an_unknown_mode_is_a_422_at_the_field_listing_the_known_ones(
    client: httpx.Client,
) -> None:
    response = client.post("/jobs", json={"checks": [CHECK, {**CHECK, "modes": "func:sideways"}]})
    assert response.status_code == 422, response.text
    (problem,) = response.json()["detail"]
    assert problem["loc"] == ["body", "checks", 1, "modes"]
    assert "unknown mode 'func:sideways'" in problem["msg"]
    assert "autograd:forward" in problem["msg"]  # [modes] the known names are listed
