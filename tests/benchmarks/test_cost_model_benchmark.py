"""The cost model's benchmark (benchmarks/cost_model.py): its classes and a CI-sized run."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmark_scripts import load_benchmark
from slowness import SLOWNESS

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "cost_model.py"
TINY_RUN_TIMEOUT_S = 300 * SLOWNESS


def test_every_class_puts_its_points_where_the_class_says() -> None:
    benchmark = load_benchmark("cost_model")
    classes = {c.name: c for c in benchmark.cost_classes(1.0)}
    on_jump = classes["jumps, every point on one"].points
    assert all(point["x"] == point["y"] or point["x"] == 0.0 for point in on_jump)
    one_value = classes["removable singularities, one value"].points
    assert all(value == 0.0 for point in one_value for value in point.values())
    many = classes["removable singularities, many values"].points
    assert all(point["x"] == point["y"] for point in many)
    assert len({point["x"] for point in many}) == len(many)


def test_a_class_whose_references_ran_past_their_budget_breaks_the_run() -> None:
    benchmark = load_benchmark("cost_model")
    row = benchmark.Row("c", 1, 1, 1.0, 9.0, 9.0, 4.0, 5.0, "error", None, "estimate")
    assert benchmark.broken([row]) == []
    late = benchmark.Row("c", 1, 1, 1.0, 9.0, 9.0, 7.5, 5.0, "error", None, "estimate")
    assert benchmark.broken([late]) == [late]


def test_tiny_run_measures_four_classes_within_their_budgets() -> None:
    command = [
        sys.executable,
        str(SCRIPT),
        *("--scale", "0.05", "--repeat", "1", "--json"),
        *("--only", "smooth,non-removable,precision,symbolic"),
    ]
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=TINY_RUN_TIMEOUT_S, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    rows = json.loads(done.stdout)
    names = [row["name"] for row in rows]
    assert names[0].startswith("smooth") and names[-1].startswith("symbolic")
    assert len(rows) == 4
    for row in rows:
        assert row["reference_s"] <= row["budget_s"] + 1.0, row
        assert row["units"] > 0 and row["measured_s"] > 0
