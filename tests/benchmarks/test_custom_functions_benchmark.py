"""The custom-Function benchmark (benchmarks/custom_functions.py) at CI size.

Expected detections come from the tools' documented rules, not from derivcheck's output:
gradcheck compares with finite differences at atol 1e-5 and rtol 1e-3 (torch's documented
defaults), so a backward biased by 1e-6 passes it; gradgradcheck differentiates the backward as
written, so a consistently wrong first derivative (the sign bug) passes it; derivcheck's
float64 tolerance is 64 ulps (about 1.4e-14 relative, docs/report-format.md), so a bias of
1e-13 fails and one of 1e-15 cannot; float32's 64 ulps are about 7.6e-6, so 1e-5 fails there.
"""

from __future__ import annotations

from pathlib import Path

from benchmark_scripts import load_benchmark


def test_the_benchmark_tells_what_each_tool_detects(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    results = load_benchmark("custom_functions").main(
        ["--points", "6", "--json", str(tmp_path / "out.json")]
    )
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
