"""The W1 performance benchmark (benchmarks/performance.py): its workload and a tiny run."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

from benchmark_scripts import load_benchmark
from slowness import SLOWNESS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "performance.py"
TINY_RUN_TIMEOUT_S = 600 * SLOWNESS


def test_floor_computes_the_w1_gradient_and_hessian() -> None:
    # Hand derivation of f = sin(x) exp(y) + x y z^2 + log(1 + z^2):
    # df/dx = cos(x) e^y + y z^2, df/dz = 2 x y z + 2 z / (1 + z^2), d2f/dx dy = cos(x) e^y + z^2.
    benchmark = load_benchmark("performance")
    x, y, z = 0.5, -0.25, 0.75
    out = benchmark.floor_run([{"x": x, "y": y, "z": z}], ["x", "y", "z"])
    assert len(out) == 3 + 9
    assert math.isclose(out[0][0], math.cos(x) * math.exp(y) + y * z**2, rel_tol=1e-6)
    assert math.isclose(out[2][0], 2 * x * y * z + 2 * z / (1 + z**2), rel_tol=1e-6)
    assert math.isclose(out[3 + 1][0], math.cos(x) * math.exp(y) + z**2, rel_tol=1e-6)


def test_chain_expression_names_exactly_its_variables() -> None:
    benchmark = load_benchmark("performance")
    text, names = benchmark.chain_expression(4)
    assert names == ["v1", "v2", "v3", "v4"]
    assert all(name in text for name in names) and "v5" not in text


def test_tiny_run_prints_every_table() -> None:
    command = [
        sys.executable,
        str(SCRIPT),
        *("--points", "60", "--repeat", "1", "--gradcheck-points", "3"),
        *("--growth", "20,60", "--variables", "1,2", "--variables-points", "10"),
        *("--memory-points", "50"),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=TINY_RUN_TIMEOUT_S, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    for title in (
        "W1:",
        "floor",
        "gradcheck",
        "derivcheck",
        "Growth in points",
        "Growth in variables",
        "Peak memory",
    ):
        assert title in done.stdout, title
