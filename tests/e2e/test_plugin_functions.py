"""Plugin functions through the whole service: ``POST /jobs`` to real worker processes.

The example plugin (examples/derivcheck-example-plugin, installed by scripts/test) declares
``stable_softplus(x)`` and ``smooth_abs(x, eps)``. A second plugin, made here on PYTHONPATH,
declares ``broken_fn`` whose torch implementation cannot be imported: the API accepts the name,
the worker reports it at start, runs the other checks, and ends that one as ``error``. The API
process must not have loaded torch: its memory maps are read from /proc.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from importlib import metadata
from pathlib import Path
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS

pytestmark = pytest.mark.slow

StartService = Callable[[Path, dict[str, str]], AbstractContextManager[str]]
JOB_TIMEOUT_S = 180.0 * SLOWNESS

BROKEN_DECLARATIONS = """FUNCTIONS = [
    {
        "name": "broken_fn",
        "args": ["x"],
        "definition": "x**2",
        "implementation": "no_such_module_for_derivcheck:fn",
    }
]
"""


def _broken_plugin(root: Path) -> Path:
    """A plugin distribution on a path of its own: metadata, entry point, declarations."""
    site = root / "site"
    info = site / "broken_plugin-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[derivcheck.functions]\nbroken = broken_plugin_declarations:FUNCTIONS\n"
    )
    (site / "broken_plugin_declarations.py").write_text(BROKEN_DECLARATIONS)
    return site


def _wait_for_job(http: httpx.Client, job_id: str) -> dict[str, Any]:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while True:
        job: dict[str, Any] = http.get(f"/jobs/{job_id}").json()
        if job["status"] in ("done", "error"):
            return job
        assert time.monotonic() < deadline, f"job not finished in {JOB_TIMEOUT_S} s: {job}"
        time.sleep(0.25)


def _api_pid(port: int) -> int:
    """The process serving ``port``: the ``serve`` command with that ``--port``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in argv and b"--port" in argv and str(port).encode() in argv:
            return int(entry.name)
    raise AssertionError(f"no API process on port {port}")


def _entry(report: dict[str, Any], kind: str, wrt: list[str] | None) -> dict[str, Any]:
    (found,) = [e for e in report["entries"] if e["kind"] == kind and e["wrt"] == wrt]
    return found


def test_plugin_functions_run_through_post_jobs_on_real_workers(
    tmp_path: Path, start_service: StartService
) -> None:
    try:
        metadata.distribution("derivcheck-example-plugin")
    except metadata.PackageNotFoundError:
        pytest.fail("install the example plugin: pip install -e examples/derivcheck-example-plugin")
    site = _broken_plugin(tmp_path)
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    checks = [
        # d/dy (2*s(y) + y) = 2*sigmoid(y) + 1; d/d s(y) = 2 (hand derivation).
        {"expression": "2*stable_softplus(y) + y", "points": [{"y": 0.5}], "nodes": True},
        # smooth_abs(3, 4) = 5; d/dx = x/5 = 0.6, d/de = e/5 = 0.8, d2/dx2 = e**2/125 = 0.128
        # (hand derivation of sqrt(x**2 + e**2)).
        {"expression": "smooth_abs(x, e)", "points": [{"x": 3, "e": 4}]},
        {"expression": "broken_fn(x) + x", "points": [{"x": 1}]},
    ]
    with start_service(tmp_path, {"PYTHONPATH": path}) as url:
        with httpx.Client(base_url=url, timeout=30 * SLOWNESS) as http:
            accepted = http.post("/jobs", json={"checks": checks, "label": "plugins"})
            assert accepted.status_code == 202, accepted.text
            job = _wait_for_job(http, accepted.json()["id"])
            report = http.get(f"/jobs/{job['id']}/report").json()
            unknown = http.post("/jobs", json={"checks": [{"expression": "nosuch_fn(x)"}]})
        maps = Path(f"/proc/{_api_pid(int(url.rsplit(':', 1)[1]))}/maps").read_text()
        worker_log = (tmp_path / "logs" / "worker.log").read_text()

    softplus, smooth, broken = report["checks"]
    assert softplus["verdict"] == "pass", softplus
    node = [e for e in softplus["entries"] if e["kind"] == "node"]
    assert {e["node"]: e["reference"] for e in node}["stable_softplus(y)"] == 2.0
    assert smooth["verdict"] == "pass", smooth
    assert _entry(smooth, "gradient", ["x"])["reference"] == 0.6
    assert _entry(smooth, "gradient", ["e"])["reference"] == 0.8
    assert _entry(smooth, "hessian", ["x", "x"])["reference"] == 0.128
    assert broken["verdict"] == "error"
    assert "no torch implementation of function 'broken_fn'" in broken["reason"]
    assert "no_such_module_for_derivcheck" in broken["reason"]
    assert "broken_fn is unavailable in this worker" in worker_log
    assert unknown.status_code == 422 and "nosuch_fn" in unknown.text
    assert "libtorch" not in maps and "torch/_C" not in maps
