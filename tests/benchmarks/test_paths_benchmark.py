"""The derivative-path benchmark (benchmarks/paths.py): a tiny run prints every path, and whole
checks with the default modes against every mode."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from slowness import SLOWNESS

from verifier.core.program.modes import MODES

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "paths.py"
TINY_RUN_TIMEOUT_S = 120 * SLOWNESS


def test_tiny_run_times_every_path_and_prints_the_ratio_to_the_defaults() -> None:
    command = [
        *(sys.executable, str(SCRIPT), "--points", "40", "--repeat", "1"),
        *("--per-point", "4", "--check", "20"),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=TINY_RUN_TIMEOUT_S, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    for text in (*MODES, "all / default", "point by point", "whole checks of W1"):
        assert text in done.stdout, text
