"""No false alarms: random smooth expressions at generic points never fail in float64.

The grammar draws from the whitelist the operations whose values stay positive on positive
inputs (sums, products, quotients, integer powers, exp(-u), sqrt, log(1 + u), atan, erf,
1/(1 + u), and Max/Min), evaluated at points in [0.5, 2]. Such expressions have no
cancellation in their values, so a correct autograd must pass; any `fail` is a false alarm.
``tanh`` is left out on purpose: torch computes its derivative as 1 - tanh(u)**2, which
really does lose relative accuracy for large u (tests/core/test_feynman.py names the case).
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from verifier import check
from verifier.core.expression.parse import parse_expression

VARIABLES = ("x", "y")
UNARY = (
    "exp(-{})",
    "sqrt({})",
    "log(1 + {})",
    "atan({})",
    "erf({})",
    "1/(1 + {})",
    "({})**2",
    "({})**3",
)
BINARY = ("({} + {})", "({} * {})", "({} / {})", "Max({}, {})", "Min({}, {})")

leaves = st.sampled_from(VARIABLES + ("2", "3", "0.5"))


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    unary = st.tuples(st.sampled_from(UNARY), children).map(lambda t: t[0].format(t[1]))
    binary = st.tuples(st.sampled_from(BINARY), children, children).map(
        lambda t: t[0].format(t[1], t[2])
    )
    return unary | binary


expressions = st.recursive(leaves, _extend, max_leaves=6).filter(
    lambda text: bool(parse_expression(text).variables)
)
coordinates = st.floats(min_value=0.5, max_value=2.0, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(expression=expressions, x=coordinates, y=coordinates)
def test_random_smooth_expressions_never_fail_in_float64(
    expression: str, x: float, y: float
) -> None:
    names = parse_expression(expression).variables
    point = {name: value for name, value in (("x", x), ("y", y)) if name in names}
    report = check(expression, at=point, nodes=True)
    failing = [e for e in report.entries if e.verdict in ("fail", "nonfinite")]
    assert report.verdict != "error", report.reason
    assert not failing, (
        expression,
        point,
        [(e.kind, e.wrt, e.node, e.autograd, e.reference) for e in failing],
    )
