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


def test_a_stored_report_shows_its_paths_on_the_check_page_and_in_the_json_report(
    client: httpx.Client, session: Session
) -> None:
    # sinc(x) at 0: sinc''(0) = -pi**2/3 (hand, Taylor series); forward-over-reverse is one
    # further path, forward-over-forward (nested autograd levels) one torch 2.13 refuses. The
    # report is the core's own, stored as a worker stores it.
    from verifier import check as core_check
    from verifier.store.documents import report_row

    modes = ["autograd:forward-over-reverse", "autograd:forward-over-forward"]
    accepted = client.post(
        "/jobs", json={"checks": [{"expression": "sinc(x)", "points": [{"x": 0}], "modes": modes}]}
    )
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    (stored,) = repository.checks_of_job(session, uuid.UUID(job_id))
    report = core_check("sinc(x)", {"x": 0.0}, modes=modes)
    assert repository.insert_report(session, report_row(stored, report.document()))
    session.commit()
    html = client.get(f"/ui/checks/{stored.id}").text
    assert 'id="paths"' in html
    for name in modes:
        assert name in html
    assert "Nested forward mode AD is not supported" in html
    document = client.get(f"/jobs/{job_id}/report").json()
    (shown,) = document["checks"]
    paths = {path["mode"]: path for path in shown["paths"]}
    assert list(paths) == modes
    assert paths["autograd:forward-over-forward"]["verdict"] == "error"
    for entry in paths["autograd:forward-over-reverse"]["entries"]:
        assert entry["mode"] == "autograd:forward-over-reverse"
        assert entry["reference"] == -3.2898681336964528  # -pi**2/3 rounded to float64
