"""The custom-Function benchmark (benchmarks/custom_functions.py) at CI size.

Expected detections come from the tools' documented rules, not from derivcheck's output:
gradcheck compares with finite differences at atol 1e-5 and rtol 1e-3 (torch's documented
defaults), so a backward biased by 1e-6 passes it; gradgradcheck differentiates the backward as
written, so a consistently wrong first derivative (the sign bug) passes it; derivcheck's
float64 tolerance is 64 ulps (about 1.4e-14 relative, docs/report-format.md), so a bias of
1e-13 fails and one of 1e-15 cannot; float32's 64 ulps are about 7.6e-6, so 1e-5 fails there.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "custom_functions.py"


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("custom_functions_benchmark", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_benchmark_tells_what_each_tool_detects(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    results = load_benchmark().main(["--points", "6", "--json", str(tmp_path / "out.json")])
    rows = {row["name"]: row for row in results["rows"]}
    for row in rows.values():
        # derivcheck passes every correct Function and detects every buggy one.
        assert row["derivcheck"].startswith("detected") == row["buggy"], row
    assert rows["biased backward (1e-6)"]["gradcheck"] == "passed"
    assert rows["sign bug below zero"]["gradgradcheck"] == "passed"
    assert rows["sign bug below zero"]["gradcheck"] == "detected"
    assert "value" in rows["approximating forward (gelu)"]["derivcheck"]
    assert rows["once-differentiable backward"]["derivcheck"] == "detected (hessian)"
    biases = results["smallest_detected_bias"]
    assert biases["float64"]["derivcheck"] in (1e-13, 1e-14)
    assert biases["float32"]["derivcheck"] == 1e-5
    assert biases["float64"]["gradcheck"] >= 1e-4
    out = capsys.readouterr().out
    assert "gradgradcheck" in out and "smallest relative bias" in out
    assert (tmp_path / "out.json").exists()
