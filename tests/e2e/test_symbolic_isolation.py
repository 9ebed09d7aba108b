"""A runaway symbolic step ends as an error within its budget; the worker goes on. The
worker's one child process, the symbolic sandbox, killed mid-check: the check runs again."""

from __future__ import annotations

import math
import os
import signal
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS

StartService = Callable[[Path, dict[str, str]], AbstractContextManager[str]]

SYMBOLIC_TIMEOUT_S = 2 * SLOWNESS
JOB_TIMEOUT_S = 120.0 * SLOWNESS
# The Hessian of a product of 30 linear factors takes SymPy far longer than 2 s: SLOW_FACTORS
# below, 22 of them, already take about 2 s (measured on the development machine), and the
# work grows faster than the square of the factors (n**2 second derivatives of n terms each).
PRODUCT = "*".join(f"(x{i} + {i + 1})" for i in range(30))
# 22 factors: about 2 s of SymPy, long enough to be killed in, far within the default budget.
SLOW_FACTORS = 22
SLOW_AT = 0.5
JOB_STARTED_CPU_S = 0.3


@pytest.mark.slow
def test_symbolic_timeout_ends_as_error_and_the_next_check_runs_at_normal_speed(
    tmp_path: Path, start_service: StartService
) -> None:
    checks = [
        {"expression": PRODUCT, "points": [{f"x{i}": 0.5 for i in range(30)}]},
        {"expression": "x**2", "points": [{"x": 3}]},
    ]
    overrides = {"VERIFIER_SYMBOLIC_TIMEOUT_S": str(SYMBOLIC_TIMEOUT_S)}
    with (
        start_service(tmp_path, overrides) as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        job_id = _submit(http, checks)
        job = _wait_for_job(http, job_id)
        # A job with a check that could not run ends with status and verdict "error".
        assert job.get("status") == "error" and job["verdict"] == "error", job
        assert job["progress"] == {"done": 2, "total": 2}
        runaway, normal = http.get(f"/jobs/{job_id}/report").json()["checks"]
    assert runaway["verdict"] == "error" and runaway["reason"] == "symbolic timeout"
    # The budget is the guarantee; the slack past it is this machine's work and scales.
    assert runaway["timings"]["total"] < SYMBOLIC_TIMEOUT_S + 10 * SLOWNESS
    assert normal["verdict"] == "pass"
    assert normal["entries"][0]["reference"] == 6.0  # d/dx x**2 = 2x = 6 at 3, by hand
    assert normal["timings"]["total"] < 5 * SLOWNESS


@pytest.mark.slow
def test_the_symbolic_process_killed_mid_check_is_replaced_and_the_check_reported_once(
    tmp_path: Path, start_service: StartService
) -> None:
    point = {f"x{i}": SLOW_AT for i in range(SLOW_FACTORS)}
    slow = "*".join(f"(x{i} + {i + 1})" for i in range(SLOW_FACTORS))
    data_dir = str(tmp_path / "data")
    with (
        start_service(tmp_path, {}) as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        # A first check starts the worker's symbolic process, which then waits, idle.
        assert _wait_for_job(http, _submit(http, [{"expression": "x**2", "points": [{"x": 3}]}]))
        (child,) = _sandboxes_of(data_dir)
        idle_cpu = _cpu_seconds(child)
        job_id = _submit(http, [{"expression": slow, "points": [point]}])
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while _cpu_seconds(child) < idle_cpu + JOB_STARTED_CPU_S:
            assert time.monotonic() < deadline, "the symbolic process never started the check"
            time.sleep(0.01)
        os.kill(child, signal.SIGKILL)
        job = _wait_for_job(http, job_id)
        (report,) = http.get(f"/jobs/{job_id}/report").json()["checks"]
        replacements = _sandboxes_of(data_dir)
    assert job["status"] == "done" and job["verdict"] == "pass", job
    assert report["verdict"] == "pass" and report["reason"] is None
    assert replacements and child not in replacements  # a fresh process ran it again
    # By hand: d/dx_j of prod_i (x_i + i + 1) is the product without factor j.
    factors = [SLOW_AT + i + 1 for i in range(SLOW_FACTORS)]
    gradient = {
        entry["wrt"][0]: entry["reference"]
        for entry in report["entries"]
        if entry["kind"] == "gradient"
    }
    assert len(gradient) == SLOW_FACTORS
    for j, factor in enumerate(factors):
        assert gradient[f"x{j}"] == pytest.approx(math.prod(factors) / factor, rel=1e-12)


def _submit(http: httpx.Client, checks: list[dict[str, Any]]) -> str:
    accepted = http.post("/jobs", json={"checks": checks})
    assert accepted.status_code == 202, accepted.text
    job_id: str = accepted.json()["id"]
    return job_id


def _wait_for_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        job = http.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "error"):
            break
        time.sleep(0.25)
    return job


def _sandboxes_of(data_dir: str) -> list[int]:
    """The symbolic processes of the workers whose data folder is ``data_dir`` (from /proc);
    the API's parser processes run the same module and are left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            environment = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue  # gone, or not ours
        if b"verifier.core.exact.sandbox" in command and (
            f"VERIFIER_DATA_DIR={data_dir}".encode() in environment
        ):
            parent = _parent_command(int(entry.name))
            if b"worker" in parent:
                found.append(int(entry.name))
    return found


def _parent_command(pid: int) -> bytes:
    """The command line of ``pid``'s parent (empty if either is gone)."""
    try:
        parent = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1]
        return Path(f"/proc/{parent}/cmdline").read_bytes()
    except (OSError, IndexError):
        return b""


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of ``pid`` (fields 14 and 15 of /proc/PID/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
