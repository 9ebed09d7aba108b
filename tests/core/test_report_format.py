"""The report format (docs/report-format.md) that the CLI, Python API and service share."""

from __future__ import annotations

import json
import math

import pytest

from verifier import check

TOP_LEVEL = {
    "expression",
    "variables",
    "dtype",
    "device",
    "verdict",
    "reason",
    "fail_on",
    "passed",
    "counts",
    "blamed",
    "literals",
    "reference_method",
    "tolerance",
    "points",
    "entries",
    "functions",
    "notes",
    "worst",
    "versions",
    "timings",
}
ENTRY = {
    "kind",
    "wrt",
    "node",
    "point",
    "autograd",
    "reference",
    "reference_radius",
    "abs_error",
    "rel_error",
    "ulp_error",
    "tolerance",
    "ratio",
    "condition",
    "correct_bits",
    "verdict",
    "detail",
    "blame",
    "phase",
}


def test_report_has_the_documented_keys_and_is_json() -> None:
    report = check("sin(x)*exp(y)", at={"x": 1, "y": 0.5}, nodes=True).to_dict()
    assert set(report) == TOP_LEVEL
    assert report["variables"] == ["x", "y"]
    assert report["functions"] == ["exp", "sin"]
    assert {entry["kind"] for entry in report["entries"]} == {"gradient", "hessian", "node"}
    for entry in report["entries"]:
        assert set(entry) == ENTRY
        if entry["kind"] == "gradient":
            assert len(entry["wrt"]) == 1 and entry["node"] is None
        elif entry["kind"] == "hessian":
            assert len(entry["wrt"]) == 2 and entry["node"] is None
        else:
            assert entry["wrt"] is None and isinstance(entry["node"], str)
    assert json.loads(json.dumps(report, allow_nan=False)) == report


def test_non_finite_numbers_are_strings_and_missing_values_null() -> None:
    # sinc''(0): torch gives nan (docs/functions.md), the reference is -pi**2/3.
    report = check("sinc(x)", at={"x": 0}).to_dict()
    hessian = [e for e in report["entries"] if e["kind"] == "hessian"][0]
    assert hessian["autograd"] == "nan"
    assert hessian["abs_error"] == "inf"
    undefined = check("Abs(x)", at={"x": 0}).to_dict()["entries"][0]
    assert undefined["reference"] is None and undefined["abs_error"] is None
    json.dumps(report, allow_nan=False)


def test_worst_errors_are_the_largest_over_entries_that_did_not_pass() -> None:
    report = check("(1 - cos(x))/x**2", at=[{"x": "0.5"}, {"x": "0.001"}], dtype="float32")
    data = report.to_dict()
    outside = [e for e in data["entries"] if e["verdict"] != "pass"]
    assert outside and len(outside) < len(data["entries"])
    largest = max(e["rel_error"] for e in outside)
    assert data["worst"]["rel_error"] == largest
    assert data["worst"]["ratio"] == max(e["ratio"] for e in outside)
    assert math.isfinite(largest)


def test_no_ulp_count_against_a_zero_reference() -> None:
    # d2/dx2 (cos(x)**2 + sin(x)**2) = 0 exactly; autograd's rounding leaves a tiny number.
    data = check("cos(x)**2 + sin(x)**2", at={"x": "1.3"}).to_dict()
    hessian = [e for e in data["entries"] if e["kind"] == "hessian"][0]
    assert hessian["reference"] == 0.0
    assert hessian["ulp_error"] is None
    assert data["worst"]["ulp_error"] is None


def test_error_report_keeps_the_format_with_a_reason() -> None:
    product = "*".join(f"(x{i} + {i + 1})" for i in range(30))
    report = check(product, at={f"x{i}": 0.5 for i in range(30)}, symbolic_timeout_s=1)
    data = report.to_dict()
    assert set(data) == TOP_LEVEL
    assert data["verdict"] == "error" and data["reason"] == "symbolic timeout"
    assert data["entries"] == []


def test_a_document_keeps_its_entries_as_columns_that_read_as_the_report_format() -> None:
    report = check("sin(x)*exp(y)", samples=40, dtype="float32", nodes=True)
    shown = report.to_dict()
    document = report.document()
    entries = document["entries"]
    assert not isinstance(entries, list)
    assert {k: v for k, v in document.items() if k != "entries"} == {
        k: v for k, v in shown.items() if k != "entries"
    }
    assert len(entries) == len(shown["entries"])
    assert list(entries) == shown["entries"]
    assert entries[0] == shown["entries"][0] and entries[-1] == shown["entries"][-1]
    assert entries[3:7] == shown["entries"][3:7]
    with pytest.raises(IndexError):
        entries[len(entries)]
