"""``scripts/gpu-check`` is ready for the first GPU: on a machine without CUDA it says so, runs
what it can, prints its table and exits 0."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch
from slowness import SLOWNESS

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the script runs it all")
def test_without_cuda_the_script_says_so_and_exits_0() -> None:
    run = subprocess.run(
        [str(ROOT / "scripts" / "gpu-check")],
        capture_output=True,
        text=True,
        timeout=300 * SLOWNESS,
    )
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    assert "CUDA is absent here" in run.stdout
    lines = run.stdout.strip().splitlines()
    assert any(line.startswith("tests marked gpu") and "skipped" in line for line in lines)
    assert lines[-1].startswith("details: ")
