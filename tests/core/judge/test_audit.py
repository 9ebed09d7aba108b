"""The local audit (verifier/core/judge/audit.py): each torch operation judged at exactly the
inputs it saw, in the forward, first backward and second backward phases, and the range events
of values and of the gradients flowing back.

Where an operation must be found inaccurate, it is a registered function whose error is put in
by hand (a bias of 1e-9 in one phase, nothing in the others), so what is found does not rest on
torch's last bits. Range events are placed where IEEE 754 leaves torch no choice: float16's
largest finite number is 65504, its smallest normal 2**-14 and its smallest subnormal 2**-24
(a value below 2**-25 rounds to 0, one of 2**-24 or 0 is more than half the value away).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
import torch

from verifier import register_function
from verifier.core.expression import registry
from verifier.core.expression.parse import parse_expression
from verifier.core.floats.dtypes import DTYPES
from verifier.core.judge.audit import (
    FIRST_BACKWARD,
    FORWARD,
    INACCURATE,
    KINK,
    OUTSIDE_DOMAIN,
    OVERFLOW,
    SECOND_BACKWARD,
    UNDERFLOW,
    Finding,
    audit,
)
from verifier.core.judge.reads import backward_reads, read_by
from verifier.core.judge.tolerance import Tolerance
from verifier.core.program.translate import Translation, program_order

BIAS = 1e-9
# The float64 tolerance: 64 ulps at 1.0 (2**-46) relative, the smallest normal absolute.
TOL64 = Tolerance(rtol=2.0**-46, atol=2.0**-1022, ulps=64)
TOL32 = Tolerance(rtol=64 * 2.0**-23, atol=2.0**-126, ulps=64)
TOL16 = Tolerance(rtol=16 * 2.0**-10, atol=2.0**-14, ulps=16)
TOLERANCES = {"float64": TOL64, "float32": TOL32, "float16": TOL16}


def value_off(u: torch.Tensor) -> torch.Tensor:
    """sin with its value BIAS * sin(u) too high; its derivatives are sin's own (the extra
    term is detached)."""
    return torch.sin(u) + BIAS * torch.sin(u).detach()


def first_off(u: torch.Tensor) -> torch.Tensor:
    """sin whose first derivative is cos(u) + BIAS: u - u.detach() is exactly 0 in value and
    has derivative 1; the second derivative is sin's own."""
    return torch.sin(u) + BIAS * (u - u.detach())


def second_off(u: torch.Tensor) -> torch.Tensor:
    """sin whose second derivative is -sin(u) + BIAS: (u - u.detach())**2 / 2 is 0 in value
    and first derivative, and has second derivative 1."""
    return torch.sin(u) + BIAS * (u - u.detach()) ** 2 / 2


OFF = {"auditvalueoff": value_off, "auditfirstoff": first_off, "auditsecondoff": second_off}


@pytest.fixture
def biased() -> Iterator[None]:
    """The three biased sines registered as custom functions defined as sin(x)."""
    for name, impl in OFF.items():
        register_function(name, impl, "sin(x)")
    yield
    for name in OFF:
        registry.forget(name)


def audited(
    text: str, points: list[dict[str, float]], dtype: str = "float64", *, hessian: bool = True
) -> list[list[Finding]]:
    parsed = parse_expression(text)
    fmt = DTYPES[dtype]
    audited = audit(parsed.expr, parsed.variables, points, fmt, TOLERANCES[dtype], hessian=hessian)
    return audited.findings


def summary(found: list[Finding]) -> set[tuple[str, str, str]]:
    return {(str(f.node), f.phase, f.kind) for f in found}


def test_accurate_operations_have_no_findings_at_any_point() -> None:
    # sin and cos in float64 are within a few ulps in every libm, far inside 64 ulps; their
    # derivatives cos, -sin, -cos likewise; the sum is correctly rounded.
    assert audited("sin(x) + cos(y)", [{"x": 0.5, "y": 0.25}, {"x": 1.0, "y": 2.0}]) == [[], []]


def test_a_wrong_value_is_found_in_the_forward_phase_alone(biased: None) -> None:
    # Local error BIAS * sin(0.5) over the allowed 2**-46 * sin(0.5): a ratio of BIAS / 2**-46
    # = 70368.7 (hand), give or take sin's own ulps (1e-16 against 1e-9: 1e-7 relative).
    (found,) = audited("auditvalueoff(x)", [{"x": 0.5}])
    assert summary(found) == {("auditvalueoff(x)", FORWARD, INACCURATE)}
    assert found[0].ratio == pytest.approx(BIAS / 2.0**-46, rel=1e-6)
    assert "custom function auditvalueoff(x)" in found[0].detail


def test_a_wrong_first_derivative_is_found_in_the_first_backward(biased: None) -> None:
    # d/du sin(u) = cos(u); the bias BIAS against 2**-46 * cos(0.5): ratio BIAS / (2**-46 *
    # cos(0.5)) = 80184.8 (hand). The value and the second derivative are sin's own.
    (found,) = audited("auditfirstoff(x)", [{"x": 0.5}])
    assert summary(found) == {("auditfirstoff(x)", FIRST_BACKWARD, INACCURATE)}
    assert found[0].ratio == pytest.approx(BIAS / (2.0**-46 * math.cos(0.5)), rel=1e-6)


def test_a_wrong_second_derivative_is_found_only_when_a_hessian_is_asked(biased: None) -> None:
    # d2/du2 sin(u) = -sin(u); the bias BIAS against 2**-46 * sin(0.5): ratio 146777 (hand).
    (found,) = audited("auditsecondoff(x)", [{"x": 0.5}])
    assert summary(found) == {("auditsecondoff(x)", SECOND_BACKWARD, INACCURATE)}
    assert found[0].ratio == pytest.approx(BIAS / (2.0**-46 * math.sin(0.5)), rel=1e-6)
    # Control: without a Hessian the second backward is not run, so nothing is found.
    assert audited("auditsecondoff(x)", [{"x": 0.5}], hessian=False) == [[]]


def test_an_inner_operation_is_judged_at_the_input_it_received(biased: None) -> None:
    # auditfirstoff(x*y) at (0.25, 2): the inner product 0.5 is exact, and the outer function
    # is judged at that input: the same ratio as at 0.5 directly. The product is correctly
    # rounded and is not blamed.
    (found,) = audited("auditfirstoff(x*y)", [{"x": 0.25, "y": 2.0}], hessian=False)
    assert summary(found) == {("auditfirstoff(x*y)", FIRST_BACKWARD, INACCURATE)}
    assert found[0].ratio == pytest.approx(BIAS / (2.0**-46 * math.cos(0.5)), rel=1e-6)


def test_cancellation_as_written_is_no_local_inaccuracy() -> None:
    # (1 - cos(x))/x**2 at float32(0.001) loses about 20 bits in 1 - cos(x) (cos(0.001) =
    # 0.9999995), yet every operation is accurate at the float32 inputs it received: cos, the
    # correctly rounded subtraction, x**2 and the division are each within a few ulps.
    x = float(np.float32(0.001))
    found = audited("(1 - cos(x))/x**2", [{"x": x}], "float32")
    assert [f for f in found[0] if f.kind == INACCURATE] == []


def test_an_exact_value_beyond_float16_overflows_in_every_phase_at_its_point() -> None:
    # exp(12) = 162754.8 (and so are its first and second derivatives) > 65504. At x = 1,
    # exp(1) = 2.718 is well inside float16's range: the control point has no finding.
    at_one, at_twelve = audited("exp(x)", [{"x": 1.0}, {"x": 12.0}], "float16")
    assert at_one == []
    assert summary(at_twelve) == {
        ("exp(x)", FORWARD, OVERFLOW),
        ("exp(x)", FIRST_BACKWARD, OVERFLOW),
        ("exp(x)", SECOND_BACKWARD, OVERFLOW),
    }


def test_a_value_rounded_away_below_float16s_range_underflows() -> None:
    # exp(-18) = 1.52e-8 < 2**-25: float16 holds 0 or 2**-24, more than half the value away.
    (found,) = audited("exp(x)", [{"x": -18.0}], "float16")
    assert (str(found[0].node), found[0].phase, found[0].kind) == ("exp(x)", FORWARD, UNDERFLOW)
    # Control: exp(-9) = 1.23e-4 is a float16 normal number (>= 2**-14 = 6.1e-5).
    assert audited("exp(x)", [{"x": -9.0}], "float16") == [[]]


def test_a_gradient_flowing_back_that_overflows_is_found_in_the_backward_phases() -> None:
    # log(x*y) at x = y = 2**-10 in float16: x*y = 2**-20 is a float16 subnormal held exactly
    # (a multiple of 2**-24) and log(2**-20) = -13.9: the forward pass is in range. The gradient
    # flowing back through x*y is 1/(x*y) = 2**20 > 65504 (first backward), and its derivative
    # by x, -1/(x**2*y) = -2**30 (second backward), overflows too.
    (found,) = audited("log(x*y)", [{"x": 2.0**-10, "y": 2.0**-10}], "float16")
    assert not [f for f in found if f.phase == FORWARD]
    assert ("x*y", FIRST_BACKWARD, OVERFLOW) in summary(found)
    assert ("x*y", SECOND_BACKWARD, OVERFLOW) in summary(found)
    flowing = [f for f in found if str(f.node) == "x*y" and f.phase == FIRST_BACKWARD]
    assert "gradient flowing back" in flowing[0].detail


def test_a_gradient_flowing_back_that_is_rounded_away_underflows() -> None:
    # z*log(x*y) at x = 64, y = 128, z = 2**-13 in float16: every forward value is a normal
    # float16 (8192, 9.01, 1.1e-3). The gradient flowing back through x*y is z/(x*y) = 2**-26
    # < 2**-25, rounded away. Control: with z = 1 it is 2**-13, a normal float16.
    (found,) = audited("z*log(x*y)", [{"x": 64.0, "y": 128.0, "z": 2.0**-13}], "float16")
    assert not [f for f in found if f.phase == FORWARD]
    assert ("x*y", FIRST_BACKWARD, UNDERFLOW) in summary(found)
    (control,) = audited("z*log(x*y)", [{"x": 64.0, "y": 128.0, "z": 1.0}], "float16")
    assert not [f for f in control if f.phase == FIRST_BACKWARD]


def test_a_product_is_only_checked_for_range_events() -> None:
    # x*y in float16 at (300, 300) is 90000 > 65504; at (3, 5), 15 exactly: nothing.
    big, small = audited("x*y", [{"x": 300.0, "y": 300.0}, {"x": 3.0, "y": 5.0}], "float16")
    assert summary(big) == {("x*y", FORWARD, OVERFLOW)}
    assert small == []


def test_an_input_outside_the_domain_is_found_and_its_derivatives_are_not_judged() -> None:
    # sqrt(-1) is not real; the audit says so once, in the forward phase.
    (found,) = audited("sqrt(x)", [{"x": -1.0}])
    assert summary(found) == {("sqrt(x)", FORWARD, OUTSIDE_DOMAIN)}
    # Control: sqrt(4) = 2, d/dx = 1/4, d2/dx2 = -1/32 (hand), each exact in float64.
    assert audited("sqrt(x)", [{"x": 4.0}]) == [[]]


def test_a_derivative_rule_applied_at_a_kink_is_found_in_each_backward() -> None:
    # |x| has no derivative at 0; torch applies sign(0) = 0. At 0.5 it is 1 (hand): no kink.
    at_zero, at_half = audited("Abs(x)", [{"x": 0.0}, {"x": 0.5}])
    assert summary(at_zero) == {("Abs(x)", FIRST_BACKWARD, KINK), ("Abs(x)", SECOND_BACKWARD, KINK)}
    assert at_half == []


def test_a_backward_reads_only_the_forward_values_its_formula_uses() -> None:
    # torch's derivatives.yaml: exp's backward is grad * result, mul's reads the other factor,
    # ndtr's reads its input alone (exp(-x**2/2)/sqrt(2*pi)), never its own value.
    parsed = parse_expression("ndtr(x) + exp(x)*y")
    inputs = {n: torch.tensor([0.5], dtype=torch.float64, requires_grad=True) for n in "xy"}
    translation = Translation(parsed.expr, inputs, DTYPES["float64"], torch.device("cpu"))
    tensors = translation.tensors
    by_name = {str(node): node for node in tensors}
    x, y, ndtr, exp = (by_name[n] for n in ("x", "y", "ndtr(x)", "exp(x)"))
    assert ndtr not in backward_reads(ndtr, tensors)
    assert exp in backward_reads(exp, tensors)
    assert backward_reads(by_name["y*exp(x)"], tensors) == {exp, y}
    reached = read_by(program_order(parsed.expr), tensors)
    # exp(x) is read by its own backward (toward x) and by the product's (toward x and y).
    assert (reached[ndtr], reached[exp]) == (frozenset(), frozenset({"x", "y"}))
    assert x in backward_reads(ndtr, tensors)


def test_an_exact_local_value_below_float64s_subnormals_keeps_its_exponent() -> None:
    # 1/u at u = exp(400) (float64 5.22e173): d/du = -u**-2 = -3.67e-348 (mpmath exp(-800)),
    # which float64 holds as 0; torch's 0 is more than half of it away: an underflow.
    (found,) = audited("1/exp(x)", [{"x": 400.0}], hessian=False)
    assert ("1/exp(x)", FIRST_BACKWARD, UNDERFLOW) in summary(found)
    (event,) = [f for f in found if f.kind == UNDERFLOW]
    assert "-3.66787e-348" in event.detail  # 6 digits of 3.6678745841776872e-348
