"""References: exact derivatives at exactly the dtype-rounded inputs, certified."""

from __future__ import annotations

import math
from fractions import Fraction

import mpmath
import pytest

from verifier import check
from verifier.core.exact.reference import (
    MAX_REFERENCE_PRECISION_BITS,
    reference_table,
    reference_values,
)
from verifier.core.expression.parse import parse_expression
from verifier.core.expression.symbolic import derive
from verifier.core.floats.dtypes import DTYPES


def test_reference_is_taken_at_the_float32_rounded_input() -> None:
    # IEEE 754: float32(0.1) = 13421773 * 2**-27 = 0.100000001490116..., and d/dx x**2 = 2x
    # there is 13421773 * 2**-26 = 0.20000000298023224 (exact in float64), not 0.2.
    report = check("x**2", at={"x": "0.1"}, dtype="float32")
    assert report.points == [{"x": 0.10000000149011612}]
    gradient = report.entries[0]
    assert gradient.reference == 0.20000000298023224
    assert gradient.verdict == "pass"


def test_references_agree_with_an_independent_mpmath_computation() -> None:
    # mpmath at 60 digits differentiates numerically (its own method), an independent check.
    text = "exp(sin(x))*y + atan2(y, x)*log(1 + x**2)"
    parsed = parse_expression(text)
    targets = derive(parsed, DTYPES["float64"], hessian=True, nodes=False)
    points = [{"x": 0.7, "y": -1.3}, {"x": 2.25, "y": 0.5}]
    values = reference_values(parsed.expr, targets, parsed.variables, points, DTYPES["float64"])
    mpmath.mp.dps = 60

    def f(x: mpmath.mpf, y: mpmath.mpf) -> mpmath.mpf:
        return mpmath.exp(mpmath.sin(x)) * y + mpmath.atan2(y, x) * mpmath.log(1 + x**2)

    for point, row in zip(points, values, strict=True):
        x, y = mpmath.mpf(point["x"]), mpmath.mpf(point["y"])
        for target, value in zip(targets, row, strict=True):
            order = tuple(target.wrt.count(name) for name in ("x", "y"))
            expected = mpmath.diff(f, (x, y), order)
            assert value.status == "ok" and value.certified
            assert value.high == pytest.approx(float(expected), rel=1e-15, abs=1e-300)


def test_reference_radius_is_far_below_one_ulp_of_the_dtype() -> None:
    report = check("exp(x)*cos(x)", at={"x": "0.3"})
    for entry in report.entries:
        assert entry.reference_radius is not None
        assert entry.reference_radius < 2.0**-62 * abs(entry.reference)


def test_a_value_that_is_exactly_zero_is_certified() -> None:
    # d2/dxdy of x**2 + y**2 is 0 exactly (hand derivation).
    report = check("x**2 + y**2", at={"x": 1.5, "y": -2})
    mixed = [e for e in report.entries if e.kind == "hessian" and e.wrt in (("x", "y"), ("y", "x"))]
    assert [e.reference for e in mixed] == [0.0, 0.0]
    assert all(e.reference_radius == 0.0 for e in mixed)


def test_ulp_error_is_measured_against_the_exact_value() -> None:
    # With the reference carried beyond float64, a float64 value one ulp away from the
    # correctly rounded result is at most 1.5 ulps from the exact value.
    report = check("x**3", at={"x": "0.1"}, hessian=False)
    entry = report.entries[0]
    exact = 3 * Fraction(0.1) ** 2  # the exact derivative at float64(0.1), by hand
    assert abs(Fraction(entry.reference) - exact) <= Fraction(math.ulp(entry.reference))
    assert entry.ulp_error is not None and entry.ulp_error < 1.5


def test_maximum_precision_is_bounded() -> None:
    assert MAX_REFERENCE_PRECISION_BITS <= 8192


def test_a_tables_rows_are_its_values_one_by_one() -> None:
    # sqrt(x) at x = -1 is outside the domain, at 0 its derivative is infinite (undefined),
    # at 4 both are ok: one row per status, and rows() must give what value() gives.
    table = reference_table(
        parse_expression("sqrt(x)").expr,
        derive(parse_expression("sqrt(x)"), DTYPES["float32"], hessian=True, nodes=False),
        ["x"],
        [{"x": -1.0}, {"x": 0.0}, {"x": 4.0}],
        DTYPES["float32"],
    )
    rows = table.rows()
    statuses = {value.status for row in rows for value in row}
    assert statuses == {"ok", "undefined", "domain"}
    assert rows == [[table.value(p, t) for t in range(len(row))] for p, row in enumerate(rows)]
