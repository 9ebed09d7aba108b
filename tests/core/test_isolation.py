"""The core stays pure, and a runaway symbolic step cannot hang or break the process."""

from __future__ import annotations

import subprocess
import sys
import time

from verifier import check


def test_core_imports_no_service_framework() -> None:
    code = (
        "import sys, verifier.core.check, verifier.core.parse;"
        "bad = [m for m in ('fastapi', 'sqlalchemy', 'celery', 'kombu') if m in sys.modules];"
        "print(','.join(bad))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


def test_parser_and_package_import_do_not_load_torch() -> None:
    code = "import sys, verifier, verifier.core.parse; print('torch' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_symbolic_timeout_ends_as_error_and_the_next_check_runs_normally() -> None:
    # The Hessian of a product of 30 linear factors takes SymPy far longer than 1 s.
    product = "*".join(f"(x{i} + {i + 1})" for i in range(30))
    started = time.monotonic()
    report = check(product, at={f"x{i}": 0.5 for i in range(30)}, symbolic_timeout_s=1)
    assert report.verdict == "error" and report.reason == "symbolic timeout"
    assert time.monotonic() - started < 15
    after = check("x**2", at={"x": 3})
    assert after.verdict == "pass" and after.gradient == [[6.0]]  # 2x at 3, by hand
