"""``derivcheck survey --device``: several devices, validated before anything runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from slowness import SLOWNESS

DERIVCHECK = Path(sys.executable).with_name("derivcheck")


def _survey(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run(
        [str(DERIVCHECK), "survey", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=300 * SLOWNESS,
        cwd=cwd,
    )


def test_an_unknown_device_is_refused_in_one_line(tmp_path: Path) -> None:
    result = _survey("--device", "cpu", "--device", "tpu", cwd=tmp_path)
    assert result.returncode == 2
    assert "unknown device tpu; choose cpu, cuda or cuda:N" in result.stderr
    assert not (tmp_path / "survey.md").exists()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_refused_before_anything_runs(tmp_path: Path) -> None:
    result = _survey("--device", "cuda", "--op", "tanh", cwd=tmp_path)
    assert result.returncode == 2
    assert "--device cuda: CUDA is not available here" in result.stderr
    assert "Traceback" not in result.stderr


def test_the_rows_and_the_meta_say_the_device(tmp_path: Path) -> None:
    result = _survey(
        "--device", "cpu", "--op", "tanh", "--dtype", "float64", "--points", "2",
        "--region-points", "2", "--workers", "1", cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    document = json.loads((tmp_path / "survey.json").read_text())
    assert document["meta"]["device"] == "cpu"
    assert [row["device"] for row in document["findings"]] == ["cpu"]
    # The header says which CPU kernel path and CPU gave the bits, and torch's version.
    meta = document["meta"]
    assert meta["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert meta["torch"] == torch.__version__ and meta["cpu"] and meta["region_points"] == 2
    table = (tmp_path / "survey.md").read_text()
    assert f"- cpu_capability: `{meta['cpu_capability']}`" in table
