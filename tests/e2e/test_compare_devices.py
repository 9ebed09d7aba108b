"""A check compared across devices through the real service: ``POST /jobs`` with
``compare_devices``, a real worker, the stored report, ``/reports`` filtered and ``/stats``
grouped by device.

CI has no GPU: the pair is the CPU twice (both sides run for real and must agree exactly), and
a CUDA comparison is routed to the ``gpu`` queue, where a worker without CUDA ends it as
``error`` saying so. The CUDA pair runs in tests/gpu/test_cuda.py on a GPU machine.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from slowness import SLOWNESS

JOB_TIMEOUT_S = 120.0 * SLOWNESS
SEED = "3*x**2 + 2*x*y + y**2"
"""The seed document's example: at (2, 1) the gradient is (14, 6), the Hessian [[6, 2], [2, 2]]."""


def _finished(http: httpx.Client, body: dict[str, Any]) -> dict[str, Any]:
    accepted = http.post("/jobs", json=body)
    assert accepted.status_code == 202, accepted.text
    job_id = accepted.json()["id"]
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while (job := http.get(f"/jobs/{job_id}").json())["status"] not in ("done", "error"):
        assert time.monotonic() < deadline, f"job {job_id} did not finish: {job}"
        time.sleep(0.3)
    return dict(job)


def test_a_compared_check_is_stored_listed_and_counted_per_device(
    tmp_path: Path, start_service: Any
) -> None:
    compared = {
        "expression": SEED,
        "points": [{"x": 2, "y": 1}],
        "device": "cpu",
        "compare_devices": ["cpu", "cpu"],
    }
    plain = {"expression": "x**2", "points": [{"x": 3}], "device": "cpu"}
    with (
        start_service(tmp_path, {}) as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        job = _finished(http, {"checks": [compared, plain]})
        assert (job["status"], job["passed"]) == ("done", True)
        first, second = http.get(f"/jobs/{job['id']}/report").json()["checks"]
        listed = http.get("/reports", params={"device": "cpu", "job": job["id"]}).json()
        stats = http.get("/stats", params={"group_by": "device", "job": job["id"]}).json()
        page = http.get(f"/ui/checks/{first['check']}").text
    assert first["compared"]["device"] == "cpu" and first["compared"]["differing"] == 0
    assert [e["autograd"] for e in first["entries"][:2]] == [14.0, 6.0]
    assert all(e["compared_autograd"] == e["autograd"] for e in first["entries"])
    assert all(e["device_difference"] == 0.0 for e in first["entries"])
    assert "compared" not in second and "compared_verdict" not in second["entries"][0]
    items = {item["expression"]: item for item in listed["items"]}
    assert (items[SEED]["compared_device"], items[SEED]["compared_verdict"]) == ("cpu", "pass")
    assert items["x**2"]["compared_device"] is None
    # The check's page says what the second device found, and its values beside the first's.
    compared_row = page.split('<tr id="compared">')[1].split("</tr>")[0]
    assert "cpu:" in compared_row and "0 values differ" in compared_row
    assert "<th>on cpu" in page and "<th>difference</th>" in page
    # Grouped by device, the compared report counts once for each of its two devices.
    (cpu,) = stats["groups"]
    assert (cpu["key"], cpu["counts"], cpu["total"]) == ("cpu", {"pass": 3}, 3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_a_cuda_comparison_on_a_worker_without_cuda_ends_as_error_saying_so(
    tmp_path: Path, start_service: Any
) -> None:
    body = {"checks": [{"expression": SEED, "points": [{"x": 2, "y": 1}], "compare_devices": True}]}
    with (
        start_service(tmp_path, {}, queues="gpu") as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        job = _finished(http, {**body})
        (report,) = http.get(f"/jobs/{job['id']}/report").json()["checks"]
    assert job["status"] in ("done", "error") and job["passed"] is False
    assert report["verdict"] == "error"
    assert "CUDA is not available" in report["reason"]
