"""The service benchmark (benchmarks/service.py) runs end to end at a tiny size and prints
every row, the bare machinery's beside the service's; its numbers are measurements, so only
their presence and the absence of errors are checked."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from slowness import SLOWNESS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "service.py"
TINY_RUN_TIMEOUT_S = 600 * SLOWNESS


def test_a_tiny_run_prints_every_row_beside_the_bare_machinery(tmp_path: Path) -> None:
    markdown = tmp_path / "service.md"
    arguments = ["--feynman-equations", "3", "--feynman-points", "5", "--small-checks", "24"]
    arguments += ["--post-rate", "5", "--seconds", "2", "--markdown", str(markdown)]
    run = subprocess.run(
        [sys.executable, str(SCRIPT), *arguments],
        capture_output=True,
        text=True,
        timeout=TINY_RUN_TIMEOUT_S,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    table = markdown.read_text()
    assert "CPU per one-check job" in table and "bare " in table
    assert "CPU per check of a 24-check job" in table
    assert "W2: 3 Feynman equations x 5 points" in table
    assert "W3: 24 small checks, one job" in table
    assert "W3: 24 small checks, one-check jobs" in table
    assert "10 offered: 10 x 202; 0 errors" in table
