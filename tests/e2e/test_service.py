"""The whole service over real processes and connections: ``derivcheck serve`` and
``derivcheck worker`` as child processes, the real core, HTTP in between.

(a) runs on the embedded defaults (SQLite database, kombu's SQLite broker); (b) on PostgreSQL
and Redis, as a fleet runs. Both submit the seed document's examples, an ill-conditioned
expression and one known failure of torch.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS

from verifier.store import migrate
from verifier.store.engine import make_engine, make_session_factory
from verifier.store.keys import create_key

pytestmark = pytest.mark.slow

StartService = Callable[[Path, dict[str, str]], AbstractContextManager[str]]
JOB_TIMEOUT_S = 180.0 * SLOWNESS

CHECKS: list[dict[str, Any]] = [
    # Seed example 1: f = x**2 + 2*x, f'(x) = 2x + 2, so f'(2) = 6 (by hand).
    {"expression": "x**2 + 2*x", "points": [{"x": 2}]},
    # Seed example 2: z = 3x^2 + 2xy + y^2; dz/dx = 6x + 2y = 14 and dz/dy = 2x + 2y = 6 at
    # (2, 1); Hessian [[6, 2], [2, 2]] (by hand).
    {"expression": "3*x**2 + 2*x*y + y**2", "points": [{"x": 2, "y": 1}]},
    # Seed example 3: node gradients of 3*x**2 at x = 2 (the seed's retain_grad example).
    {"expression": "3*x**2", "points": [{"x": 2}], "nodes": True},
    # The cancellation example: (1 - cos(x))/x**2 at 0.001 in float32 cancels catastrophically,
    # every operation accurate: ill-conditioned, the digits lost at 1 - cos(x)
    # (docs/report-format.md).
    {"expression": "(1 - cos(x))/x**2", "points": [{"x": "0.001"}], "dtype": "float32"},
    # torch's tanh'(u) = 1 - tanh(u)**2 loses about 1e-9 relative at u = 9 in float64, far
    # beyond rounding of tanh(x) as written (tests/core/test_traps.py): a fail of tanh's rule.
    {"expression": "tanh(x)", "points": [{"x": 9}]},
]
EXPECTED_VERDICTS = ["pass", "pass", "pass", "ill-conditioned", "fail"]


def _wait_for_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "error"):
            return job
        assert time.monotonic() < deadline, f"job not finished in {JOB_TIMEOUT_S} s: {job}"
        time.sleep(0.25)


def _entry(report: dict[str, Any], kind: str, wrt: list[str]) -> dict[str, Any]:
    (entry,) = [e for e in report["entries"] if e["kind"] == kind and e["wrt"] == wrt]
    return entry


def _submit_seed_examples_and_check_the_answers(
    url: str, headers: dict[str, str] | None = None
) -> None:
    with httpx.Client(base_url=url, timeout=30 * SLOWNESS, headers=headers) as http:
        accepted = http.post("/jobs", json={"checks": CHECKS, "label": "e2e"})
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]

        job = _wait_for_job(http, job_id)
        assert job["status"] == "done"
        assert job["verdict"] == "fail"  # worst of the verdicts (verifier/core/judge/verdict.py)
        assert job["passed"] is False  # fail is in the default fail_on
        assert job["progress"] == {"done": 5, "total": 5}

        report = http.get(f"/jobs/{job_id}/report").json()
        checks = report["checks"]
        assert [check["verdict"] for check in checks] == EXPECTED_VERDICTS
        assert _entry(checks[0], "gradient", ["x"])["autograd"] == 6.0  # f'(2) = 6, by hand
        seed2 = checks[1]
        assert _entry(seed2, "gradient", ["x"])["reference"] == 14.0  # 6x + 2y at (2, 1)
        assert _entry(seed2, "gradient", ["y"])["reference"] == 6.0  # 2x + 2y at (2, 1)
        mixed = _entry(seed2, "hessian", ["x", "y"])
        assert mixed["autograd"] == 2.0  # d2z/dxdy = 2, by hand
        assert mixed["reference"] == 2.0
        assert any(entry["kind"] == "node" for entry in checks[2]["entries"])
        cancellation, tanh = checks[3], checks[4]
        assert cancellation["dtype"] == "float32"
        assert cancellation["passed"] is True  # ill-conditioned is not in the default fail_on
        assert {(b["node"], b["phase"]) for b in cancellation["blamed"]} == {
            ("1 - cos(x)", "forward")
        }
        assert tanh["passed"] is False
        assert {b["node"] for b in tanh["blamed"]} == {"tanh(x)"}
        assert "first backward" in {b["phase"] for b in tanh["blamed"]}
        assert sum(tanh["counts"].values()) == len(tanh["entries"])

        failing = http.get("/reports", params={"verdict": "fail", "job": job_id}).json()
        assert [item["expression"] for item in failing["items"]] == ["tanh(x)"]
        assert failing["items"][0]["index"] == 4
        assert failing["items"][0]["passed"] is False


def test_service_on_embedded_defaults(tmp_path: Path, start_service: StartService) -> None:
    with start_service(tmp_path, {}) as url:
        _submit_seed_examples_and_check_the_answers(url)


def test_service_on_postgres_and_redis(
    tmp_path: Path, postgres_url: str, redis_url: str, start_service: StartService
) -> None:
    # Not the embedded defaults: the API requires keys there (Settings.api_keys "auto" is off
    # only for the embedded defaults on loopback), so the test makes one.
    migrate.upgrade(postgres_url)
    engine = make_engine(postgres_url)
    with make_session_factory(engine)() as session:
        _, key = create_key(session, "e2e")
    engine.dispose()
    overrides = {"VERIFIER_DATABASE_URL": postgres_url, "VERIFIER_BROKER_URL": redis_url}
    with start_service(tmp_path, overrides) as url:
        assert (
            httpx.get(f"{url}/jobs/{uuid.uuid4()}", timeout=30 * SLOWNESS).status_code == 401
        )  # no key
        _submit_seed_examples_and_check_the_answers(url, {"Authorization": f"Bearer {key}"})
