"""The cost model holds against measurement: limits are priced, taken once per singular value,
and a check's references end within a budget derived from its estimate."""

from __future__ import annotations

import math
import time

import pytest
from slowness import SLOWNESS

from verifier import check
from verifier.core.check import MIN_REFERENCE_BUDGET_S, REFERENCE_BUDGET_FACTOR
from verifier.core.exact import reference
from verifier.core.expression.cost import LIMIT_UNITS, SYMBOLIC_WEIGHT, estimate, shape
from verifier.core.expression.parse import parse_expression
from verifier.core.expression.symbolic import derive
from verifier.core.floats.dtypes import DTYPES

SINC_EVASION = "+".join(f"sinc(x{i})" for i in range(16))
REPORT_TAIL_S = 3.0
"""What a check does after its references on this machine (judging, diagnosis), unscaled."""


@pytest.mark.parametrize(
    ("text", "prone"),
    [
        ("x**2 + exp(y)", 0),  # natural powers and exp: derivatives finite wherever values are
        ("2**x", 0),  # a constant base: no singular point
        ("sqrt(x)", 1),  # x**(1/2): infinite derivative at 0
        ("1/x + y", 1),  # x**-1
        ("sinc(x)*log(y)", 2),
        ("asin(x) + x**y", 2),
        ("log1p(x)", 1),  # log(1 + x), its definition expanded
        ("round(x) + sqrt(y)", 1),  # round is a jump instruction, without a definition
    ],
)
def test_limit_prone_nodes_are_counted_by_hand(text: str, prone: int) -> None:
    assert shape(parse_expression(text)).limit_prone == prone


def test_the_sinc_evasion_is_priced_with_room_for_its_limits() -> None:
    # Hand count: 16 variables with a Hessian: 16 + 256 = 272 entries per point; the tree is
    # the Add, 16 sincs and 16 symbols: 33 nodes; 16 limit-prone nodes, two limits each.
    # 20 x 272 + 33 x 272 x SYMBOLIC_WEIGHT + 16 x 2 x LIMIT_UNITS.
    cost = estimate(parse_expression(SINC_EVASION), 20, hessian=True, nodes=False)
    assert cost.units == 20 * 272 + 33 * 272 * SYMBOLIC_WEIGHT + 32 * LIMIT_UNITS


def test_points_sharing_a_singular_value_take_each_limit_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # sinc(x) = sin(pi x)/(pi x) = 1 - (pi x)**2/6 + ...: its derivative at 0 is 0 and its
    # second derivative -pi**2/3 (Taylor series, by hand). Every point has x = 0, y varies.
    taken: list[object] = []
    real_limit = reference.removable_limit

    def counted(expr: object, point: object) -> object:
        taken.append(expr)
        return real_limit(expr, point)  # type: ignore[arg-type]

    monkeypatch.setattr(reference, "removable_limit", counted)
    parsed = parse_expression("sinc(x) + y**2")
    targets = derive(parsed, DTYPES["float64"], hessian=True, nodes=False)
    points = [{"x": 0.0, "y": 0.25 * k} for k in range(12)]
    rows = reference.reference_values(
        parsed.expr, targets, parsed.variables, points, DTYPES["float64"]
    )
    keys = [target.key for target in targets]
    d_dx = keys.index(("gradient", ("x",), None))
    d2_dx2 = keys.index(("hessian", ("x", "x"), None))
    for row in rows:
        assert row[d_dx].status == "ok" and row[d_dx].high == 0.0
        assert math.isclose(row[d2_dx2].high or 0.0, -(math.pi**2) / 3, rel_tol=1e-15)
    # d/dx and d2/dx2 are singular at x = 0 (the mixed and y entries are not): two limits for
    # the whole check, not two per point.
    assert len(taken) == 2


def test_the_sinc_evasion_finishes_within_three_times_its_estimate() -> None:
    # The evasion as measured: 16 sincs at 20 points all at the removable singularity, once
    # estimated at 0.72 s and run for 117 s.
    points = [{f"x{i}": 0.0 for i in range(16)} for _ in range(20)]
    cost = estimate(parse_expression(SINC_EVASION), 20, hessian=True, nodes=False)
    check("x", at={"x": 1.0})  # a warm symbolic process: its start-up is in no estimate
    started = time.monotonic()
    report = check(SINC_EVASION, at=points)
    elapsed = time.monotonic() - started
    assert elapsed <= REFERENCE_BUDGET_FACTOR * cost.seconds + REPORT_TAIL_S * SLOWNESS
    assert report.reason in (None, "reference timeout")


def test_references_past_their_budget_end_the_check_with_a_note_that_says_why() -> None:
    # sinc(x - y) at 200 points with x = y, each a different singular value: a new symbolic
    # limit per point and derivative, far more than the 5 s budget of a check estimated at
    # well under a second.
    points = [{"x": 0.125 * k, "y": 0.125 * k} for k in range(1, 201)]
    cost = estimate(parse_expression("sinc(x - y)"), len(points), hessian=True, nodes=False)
    assert REFERENCE_BUDGET_FACTOR * cost.seconds < MIN_REFERENCE_BUDGET_S
    check("x", at={"x": 1.0})
    report = check("sinc(x - y)", at=points)
    assert report.verdict == "error" and report.reason == "reference timeout"
    assert report.timings["reference"] <= MIN_REFERENCE_BUDGET_S + 1.0 * SLOWNESS
    (note,) = [note for note in report.notes if "budget" in note]
    assert f"budget of {MIN_REFERENCE_BUDGET_S:g} s" in note and "symbolic limit" in note
