"""A real worker on the ``gpu`` queue runs a submitted CUDA check (marked ``gpu``: skipped
without CUDA; ``scripts/gpu-check`` runs it on a GPU machine)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from slowness import SLOWNESS

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available here"),
]
JOB_TIMEOUT_S = 300.0 * SLOWNESS


def test_a_gpu_worker_runs_a_cuda_check(tmp_path: Path, start_service: Any) -> None:
    body = {"checks": [{"expression": "x**2 + 2*x", "points": [{"x": 3}], "device": "cuda"}]}
    with (
        start_service(tmp_path, {}, queues="gpu") as url,
        httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http,
    ):
        accepted = http.post("/jobs", json=body)
        assert accepted.status_code == 202, accepted.text
        job_id = accepted.json()["id"]
        deadline = time.monotonic() + JOB_TIMEOUT_S
        while http.get(f"/jobs/{job_id}").json()["status"] not in ("done", "error"):
            assert time.monotonic() < deadline, "the gpu worker did not run the check"
            time.sleep(0.5)
        (report,) = http.get(f"/jobs/{job_id}/report").json()["checks"]
    assert report["device"].startswith("cuda")
    # d/dx (x^2 + 2x) = 2x + 2 = 8 at 3, second derivative 2 (hand).
    assert report["verdict"] == "pass"
    assert [entry["autograd"] for entry in report["entries"]] == [8.0, 2.0]
