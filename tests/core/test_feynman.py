"""The AI Feynman equations (Udrescu & Tegmark, Science Advances 6(16), eaay2631, 2020).

All 120 formulas (100 in FeynmanEquations.csv, 20 in BonusEquations.csv; UTF-8 with a BOM)
are read from ../shared/corpora/feynman at test time. Each must parse, and at 20 points drawn
inside its variable ranges, in float64 and float32, no entry (gradient, Hessian, node
gradients) may be a defect (``fail``, ``nonfinite``) or unexplained (``unverified``), except
where the listed reason holds. These are smooth physics formulas with moderate values: an entry
outside the tolerance there is the rounding of the formula as written (``ill-conditioned``),
never autograd's fault.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from verifier import check
from verifier.core.expression.parse import parse_expression

CORPUS = Path(__file__).resolve().parents[3] / "shared" / "corpora" / "feynman"
POINTS_PER_EQUATION = 20
SEED = 2020

# Known exceptions, by name, with the reason and a predicate that must explain every failing
# entry. None of the 120 formulas has a genuine singularity inside its ranges (every range is
# positive and away from poles), so the only exception is a real autograd inaccuracy:
# torch differentiates tanh(u) as 1 - tanh(u)**2, which cancels for large |u| (sech(u)**2 is
# about 4 exp(-2|u|)), so the relative error grows like exp(2|u|) * eps (docs/functions.md).
# Each such entry must be a `fail` that blames tanh in a backward phase.
TANH_CANCELLATION_ARGUMENT = 2.0
EXCEPTIONS = {
    "II.35.21": (
        "torch's tanh backward, 1 - tanh(u)**2, loses relative accuracy for large u",
        lambda p: abs(p["mom"] * p["B"] / (p["kb"] * p["T"])) > TANH_CANCELLATION_ARGUMENT,
    ),
}


def equations() -> list[dict[str, str]]:
    rows = []
    for name in ("FeynmanEquations.csv", "BonusEquations.csv"):
        with open(CORPUS / name, encoding="utf-8-sig", newline="") as handle:
            rows.extend(row for row in csv.DictReader(handle) if row["Filename"])
    return rows


def ranges(row: dict[str, str]) -> dict[str, tuple[float, float]]:
    result = {}
    for i in range(1, 11):
        name = row.get(f"v{i}_name")
        if name:
            result[name] = (float(row[f"v{i}_low"]), float(row[f"v{i}_high"]))
    return result


def test_corpus_has_the_published_120_equations() -> None:
    # 100 main equations and 20 bonus equations (Udrescu & Tegmark 2020, Tables 4 and 7).
    rows = equations()
    assert len(rows) == 120
    assert len({row["Filename"] for row in rows}) == 120


@pytest.mark.parametrize("row", equations(), ids=lambda row: row["Filename"])
def test_every_formula_parses_with_the_tables_variables(row: dict[str, str]) -> None:
    parsed = parse_expression(row["Formula"])
    assert set(parsed.variables) == set(ranges(row))


EXPLAINED = {"pass", "ill-conditioned"}


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("row", equations(), ids=lambda row: row["Filename"])
def test_no_defect_is_reported_inside_the_ranges(row: dict[str, str], dtype: str) -> None:
    report = check(
        row["Formula"],
        samples=POINTS_PER_EQUATION,
        domain=ranges(row),
        seed=SEED,
        nodes=True,
        dtype=dtype,
    )
    assert report.verdict != "error", report.reason
    failing = [e for e in report.entries if e.verdict not in EXPLAINED]
    exception = EXCEPTIONS.get(row["Filename"])
    if exception is None:
        assert not failing, [(e.kind, e.wrt, e.node, e.verdict, e.detail) for e in failing[:5]]
        return
    reason, explains = exception
    for entry in failing:
        assert entry.verdict == "fail", reason
        assert entry.blame is not None and entry.blame.startswith("tanh("), entry.blame
        assert entry.phase in ("first backward", "second backward")
        assert explains(report.points[entry.point]), (reason, report.points[entry.point])
        assert entry.rel_error is not None and math.isfinite(entry.rel_error)
