"""The CLI's service commands against a running service on embedded defaults, as README's
"The service" shows them: submit --wait, status, reports with filters, stats."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import httpx
import pytest
from slowness import SLOWNESS

pytestmark = pytest.mark.slow

StartService = Callable[[Path, dict[str, str]], AbstractContextManager[str]]

CHECKS = [
    # Seed example 1: f'(2) = 6 for f = x**2 + 2*x (by hand): a pass.
    {"expression": "x**2 + 2*x", "points": [{"x": 2}]},
    # The cancellation example: (1 - cos(x))/x**2 at 0.001 in float32 is ill-conditioned:
    # every operation is accurate, the digits are lost at 1 - cos(x) (docs/report-format.md,
    # ill-conditioned).
    {"expression": "(1 - cos(x))/x**2", "points": [{"x": "0.001"}], "dtype": "float32"},
]
# --strict: every verdict but pass and domain fails (verifier/core/judge/verdict.py), plus domain.
STRICT_AND_DOMAIN = [
    "domain", "fail", "ill-conditioned", "nonfinite", "range", "undefined", "unverified"
]  # fmt: skip


def _derivcheck(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "verifier", *arguments],
        capture_output=True,
        text=True,
        timeout=300 * SLOWNESS,
    )


def _json(result: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(result.stdout)


def test_submit_wait_then_query_reports_and_stats_with_reports_of_several_pages(
    tmp_path: Path, start_service: StartService
) -> None:
    # One service for what was two tests of the same run: pages of 3 entries, so the two
    # checks' 2 + 2 entries (a gradient and a Hessian element each, one variable) take two
    # pages, the second check split between them, and every command below reads them whole.
    path = tmp_path / "checks.jsonl"
    path.write_text("".join(json.dumps(check) + "\n" for check in CHECKS))
    with start_service(tmp_path, {"VERIFIER_MAX_REPORT_PAGE_ENTRIES": "3"}) as url:
        refused = _derivcheck("submit", str(path), "--fail-on", "fail,bogus", "--url", url)
        assert refused.returncode == 2
        assert "--fail-on: unknown verdict 'bogus': choose from pass, domain" in refused.stderr

        # The default fail-on (fail, nonfinite) lets the ill-conditioned check pass: exit 0.
        submitted = _derivcheck("submit", str(path), "--wait", "--json", "--url", url)
        assert submitted.returncode == 0, submitted.stderr
        report = _json(submitted)
        assert [check["verdict"] for check in report["checks"]] == ["pass", "ill-conditioned"]
        assert [check["passed"] for check in report["checks"]] == [True, True]
        assert [len(check["entries"]) for check in report["checks"]] == [2, 2]
        assert [e["kind"] for e in report["checks"][1]["entries"]] == ["gradient", "hessian"]
        job_id = report["job"]["id"]

        # --strict (with --fail-on domain added) fails it: exit 1, and the summary says why.
        strict = _derivcheck(
            "submit", str(path), "--wait", "--strict", "--fail-on", "domain", "--url", url
        )
        assert strict.returncode == 1, strict.stderr
        assert "blamed operations" in strict.stdout and "1 - cos(x)" in strict.stdout
        assert "failed (1 of 2 checks)" in strict.stdout

        status = _derivcheck("status", job_id, "--json", "--url", url)
        assert status.returncode == 0, status.stderr
        assert (_json(status)["status"], _json(status)["passed"]) == ("done", True)

        reports_json = _derivcheck(
            "reports", "--verdict", "ill-conditioned", "--json", "--url", url
        )
        assert reports_json.returncode == 0, reports_json.stderr
        items = _json(reports_json)["items"]
        assert [item["passed"] for item in items] == [False, True]  # newest first: strict job
        strict_job = items[0]["job"]
        assert _json(_derivcheck("status", strict_job, "--json", "--url", url))["passed"] is False
        stored = httpx.get(f"{url}/jobs/{strict_job}/report", timeout=30 * SLOWNESS).json()
        assert [check["fail_on"] for check in stored["checks"]] == [STRICT_AND_DOMAIN] * 2
        table = _derivcheck("status", strict_job, "--url", url)
        assert table.returncode == 0, table.stderr
        assert "ill-conditioned" in table.stdout and "forward" in table.stdout

        failing = _derivcheck(
            "reports", "--verdict", "ill-conditioned", "--dtype", "float32", "--json", "--url", url
        )
        assert failing.returncode == 0, failing.stderr
        items = _json(failing)["items"]
        assert [item["expression"] for item in items] == ["(1 - cos(x))/x**2"] * 2

        counts = _derivcheck("stats", "--by", "dtype", "--json", "--url", url)
        assert counts.returncode == 0, counts.stderr
        groups = {group["key"]: group["counts"] for group in _json(counts)["groups"]}
        assert groups == {"float32": {"ill-conditioned": 2}, "float64": {"pass": 2}}

        table = _derivcheck("reports", "--verdict", "ill-conditioned", "--url", url)
        assert table.returncode == 0 and "(1 - cos(x))/x**2" in table.stdout
        assert "blamed operations" in table.stdout

        unknown = _derivcheck("status", "00000000-0000-0000-0000-000000000000", "--url", url)
        assert unknown.returncode == 2
        assert "no job" in unknown.stderr and "Traceback" not in unknown.stderr
