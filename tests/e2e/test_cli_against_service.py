"""The CLI's service commands against a running service on embedded defaults, as issue 3's
first lines show: submit --wait, status, reports with filters, stats."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import pytest

pytestmark = pytest.mark.slow

StartService = Callable[[Path, dict[str, str]], AbstractContextManager[str]]

CHECKS = [
    # Seed example 1: f'(2) = 6 for f = x**2 + 2*x (by hand): a pass.
    {"expression": "x**2 + 2*x", "points": [{"x": 2}]},
    # Issue 3: (1 - cos(x))/x**2 at 0.001 in float32 is a fail.
    {"expression": "(1 - cos(x))/x**2", "points": [{"x": "0.001"}], "dtype": "float32"},
]


def _derivcheck(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "verifier.cli.service", *arguments],
        capture_output=True,
        text=True,
        timeout=300,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def test_submit_wait_then_query_reports_and_stats(
    tmp_path: Path, start_service: StartService
) -> None:
    path = tmp_path / "checks.jsonl"
    path.write_text("".join(json.dumps(check) + "\n" for check in CHECKS))
    with start_service(tmp_path, {}) as url:
        submitted = _derivcheck("submit", str(path), "--wait", "--json", "--url", url)
        assert submitted.returncode == 1, submitted.stderr  # a failing check: exit status 1
        report = _json(submitted)
        assert [check["verdict"] for check in report["checks"]] == ["pass", "fail"]
        job_id = report["job"]["id"]

        status = _derivcheck("status", job_id, "--json", "--url", url)
        assert status.returncode == 0, status.stderr
        assert _json(status)["status"] == "done"

        failing = _derivcheck(
            "reports", "--verdict", "fail", "--dtype", "float32", "--json", "--url", url
        )
        assert failing.returncode == 0, failing.stderr
        items = _json(failing)["items"]
        assert [item["expression"] for item in items] == ["(1 - cos(x))/x**2"]

        counts = _derivcheck("stats", "--by", "dtype", "--json", "--url", url)
        assert counts.returncode == 0, counts.stderr
        groups = {group["key"]: group["counts"] for group in _json(counts)["groups"]}
        assert groups == {"float32": {"fail": 1}, "float64": {"pass": 1}}

        table = _derivcheck("reports", "--verdict", "fail", "--url", url)
        assert table.returncode == 0 and "(1 - cos(x))/x**2" in table.stdout

        unknown = _derivcheck("status", "00000000-0000-0000-0000-000000000000", "--url", url)
        assert unknown.returncode == 2
        assert "no job" in unknown.stderr and "Traceback" not in unknown.stderr
