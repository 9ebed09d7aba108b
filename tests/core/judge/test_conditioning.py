"""Conditioning (verifier/core/judge/conditioning.py): how far the rounding of the computation
as written can move each entry, and where its digits are lost.

The expected numbers are hand derivations from the model the module documents: every
operation's result carries a rounding of u times its size (u = half an ulp, eps/2, for ``+``,
``*`` and integer powers, and the check's rtol for other functions); an entry's weight is the
sum over those roundings of |d entry / d rounding| * rounding / rtol, plus the sum of the
absolute values of its chain-rule terms; its condition factor is weight / |exact value|. With
rtol = 64 ulps at 1.0 (64 * eps), half an ulp weighs 1/128. The float64 computation of the
model carries its own roundings, so comparisons allow 1e-12 relative.
"""

from __future__ import annotations

import math

import mpmath
import pytest
import sympy

from verifier.core.expression.parse import parse_expression
from verifier.core.expression.symbolic import GRADIENT, HESSIAN, NODE, VALUE, Key, node_key
from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.conditioning import Conditioning, conditioning

VALUE_KEY: Key = (VALUE, (), None)
GRAD_X: Key = (GRADIENT, ("x",), None)
GRAD_Y: Key = (GRADIENT, ("y",), None)
HESS_XX: Key = (HESSIAN, ("x", "x"), None)
HESS_XY: Key = (HESSIAN, ("x", "y"), None)
# 64 ulps at 1.0 in float64 and float32.
RTOL = {"float64": 64 * 2.0**-52, "float32": 64 * 2.0**-23}


def conditioned(
    text: str, points: list[dict[str, float]], keys: list[Key], dtype: str = "float64"
) -> tuple[Conditioning, sympy.Expr]:
    parsed = parse_expression(text)
    analysis = conditioning(parsed.expr, parsed.variables, points, keys, DTYPES[dtype], RTOL[dtype])
    return analysis, parsed.expr


def test_the_gradient_of_a_product_has_condition_factor_one() -> None:
    # f = x*y at (3, -5): df/dx = y, one chain-rule term |y| = 5; no forward rounding reaches
    # it (f + d has the same df/dx). Weight 5, factor 5 / |-5| = 1. Its terms dominate, so no
    # forward rounding site is named.
    analysis, _ = conditioned("x*y", [{"x": 3.0, "y": -5.0}], [GRAD_X])
    assert analysis.weight[GRAD_X][0] == 5.0
    assert analysis.factor(GRAD_X, 0, -5.0) == 1.0
    assert analysis.lost_at(GRAD_X, 0) is None


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_the_value_of_a_product_weighs_half_an_ulp_of_its_result(dtype: str) -> None:
    # f = x*y = -15: one correctly rounded multiplication, a rounding of 15 * eps/2, with weight
    # 1 in f: 15 * (eps/2) / (64 * eps) = 15/128 in either dtype, factor 1/128 at |f| = 15.
    analysis, expr = conditioned("x*y", [{"x": 3.0, "y": -5.0}], [VALUE_KEY], dtype)
    assert analysis.weight[VALUE_KEY][0] == 15 / 128
    assert analysis.factor(VALUE_KEY, 0, -15.0) == 1 / 128
    assert analysis.lost_at(VALUE_KEY, 0) == expr


def test_a_forward_rounding_and_a_chain_rule_term_add_up_in_the_weight() -> None:
    # f = y*exp(x) at (0.5, 2): df/dy = exp(x). exp's rounding u*exp(x) reaches df/dy with
    # weight 1 (u = rtol: forward weight exp(x)); its one chain-rule term is |exp(x)|.
    # Weight 2*exp(0.5), factor 2.
    analysis, _ = conditioned("y*exp(x)", [{"x": 0.5, "y": 2.0}], [GRAD_Y])
    assert analysis.weight[GRAD_Y][0] == pytest.approx(2 * math.exp(0.5), rel=1e-12)
    assert analysis.factor(GRAD_Y, 0, math.exp(0.5)) == pytest.approx(2.0, rel=1e-12)


def test_a_mixed_second_derivative_weighs_its_one_term() -> None:
    # f = y*sin(x): d2f/dxdy = cos(x), one term |cos(x)|; a constant rounding of sin(x) or of
    # the product does not change a second derivative. Weight cos(0.5), factor 1.
    analysis, _ = conditioned("y*sin(x)", [{"x": 0.5, "y": 2.0}], [HESS_XY])
    assert analysis.weight[HESS_XY][0] == pytest.approx(math.cos(0.5), rel=1e-12)
    assert analysis.factor(HESS_XY, 0, math.cos(0.5)) == pytest.approx(1.0, rel=1e-12)


def test_a_node_gradient_weighs_the_gradient_flowing_back_to_it() -> None:
    # f = y*sin(x): df/d(sin(x)) = y = 2, one term; the node's own rounding does not change it.
    sine = sympy.sin(parse_expression("x").expr)
    key: Key = (NODE, (), node_key(sine))
    analysis, _ = conditioned("y*sin(x)", [{"x": 0.5, "y": 2.0}], [key])
    assert analysis.weight[key][0] == 2.0
    assert analysis.factor(key, 0, 2.0) == 1.0


def test_an_exact_zero_has_an_infinite_factor_unless_nothing_weighs_on_it() -> None:
    # f = x*y: d2f/dxdy = 1 (one term, weight 1) and d2f/dx2 = 0 (no term, no rounding).
    analysis, _ = conditioned("x*y", [{"x": 3.0, "y": -5.0}], [HESS_XY, HESS_XX])
    assert analysis.weight[HESS_XY][0] == 1.0
    assert analysis.factor(HESS_XY, 0, 0.0) == math.inf
    assert analysis.weight[HESS_XX][0] == 0.0
    assert analysis.factor(HESS_XX, 0, 0.0) == 0.0


def test_exp_minus_one_near_zero_loses_its_digits_at_the_subtraction() -> None:
    # f = exp(x) - 1. exp's rounding u*exp(x) weighs exp(x); the correctly rounded sum's
    # (exp(x) + 1) * eps/2 weighs (exp(x) + 1)/128. At x = 2**-20 the exact value is
    # expm1(2**-20) = 9.5e-7 (mpmath), so the factor is about 1.07e6. The subtraction's local
    # condition exp(x)/(exp(x) - 1) = 2**20 exceeds exp's, |x| = 2**-20: the digits are lost
    # at the subtraction.
    x = 2.0**-20
    analysis, expr = conditioned("exp(x) - 1", [{"x": x}, {"x": 2.0}], [VALUE_KEY])
    with mpmath.workdps(40):
        e = mpmath.exp(mpmath.mpf(x))
        weight = float(e + (e + 1) / 128)
        exact = float(mpmath.expm1(mpmath.mpf(x)))
        local = float(e / (e - 1))
    assert analysis.weight[VALUE_KEY][0] == pytest.approx(weight, rel=1e-12)
    assert analysis.factor(VALUE_KEY, 0, exact) == pytest.approx(weight / exact, rel=1e-12)
    assert analysis.factor(VALUE_KEY, 0, exact) > 1e6
    assert analysis.local[expr][0] == pytest.approx(local, rel=1e-12)
    assert analysis.lost_at(VALUE_KEY, 0) == expr
    # Control, x = 2: factor (e**2 + (e**2 + 1)/128)/(e**2 - 1) = 1.17, nothing to speak of;
    # exp's local condition |x| = 2 exceeds the subtraction's e**2/(e**2 - 1) = 1.16.
    e2 = math.exp(2.0)
    assert analysis.factor(VALUE_KEY, 1, e2 - 1) == pytest.approx(
        (e2 + (e2 + 1) / 128) / (e2 - 1), rel=1e-12
    )
    assert analysis.factor(VALUE_KEY, 1, e2 - 1) < 2
    assert analysis.lost_at(VALUE_KEY, 1) == sympy.exp(parse_expression("x").expr)


def test_the_bound_is_the_documented_first_order_bound_with_its_safety_factor() -> None:
    # Module docstring: the backward passes add at most sum|terms| * depth, counted twice (two
    # roundings per term) times u; the bound is 4 times (BOUND_SAFETY) forward + backward.
    # x*y has depth 2: d f/dx = y: 4 * 5 * 2 * 2 * u; the value -15: 4 * 15 * eps/2.
    analysis, _ = conditioned("x*y", [{"x": 3.0, "y": -5.0}], [GRAD_X, VALUE_KEY])
    u = RTOL["float64"]
    assert analysis.bound[GRAD_X][0] == pytest.approx(4 * 5 * 2 * 2 * u, rel=1e-12)
    assert analysis.bound[VALUE_KEY][0] == pytest.approx(4 * 15 * 2.0**-53, rel=1e-12)
